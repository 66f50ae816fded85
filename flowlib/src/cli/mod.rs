//! The command line every flow binary gets from [`flowlib::main`](crate::main): one module
//! per command, each with its clap definition and what it does. Commands that show data
//! build a [report](crate::report) and print its rendering.
//!
//! Every user error is one line on stderr and a non-zero exit: 2 for bad input, 1 for a
//! run that failed or an operation that could not complete.

mod alias;
mod args;
mod cache;
mod cancel;
mod check;
mod compare;
mod dump;
mod export;
mod gc;
mod lineage;
mod logs;
#[cfg(feature = "otel")]
mod otel;
mod report;
mod resume;
mod run;
mod runs;
mod show;
mod step;
mod tag;
mod verify;

use std::process::ExitCode;

use clap::{ArgMatches, Command};

use crate::error::{chain, Error, Result};
use crate::flow::Flow;

/// Run the command line for flow `F`. Use it as the whole `main`:
///
/// ```no_run
/// # use flowlib::prelude::*;
/// # #[derive(FlowState, Default, Serialize, Deserialize)] struct Hello { n: u32 }
/// # #[flow] impl Hello { #[step(start, next = end)] fn start(&mut self) -> Result<()> { Ok(()) }
/// #   #[step(end)] fn end(&mut self) -> Result<()> { Ok(()) } }
/// fn main() -> std::process::ExitCode {
///     flowlib::main::<Hello>()
/// }
/// ```
pub fn main<F: Flow>() -> ExitCode {
    main_with_args::<F, _>(std::env::args_os())
}

/// [`main`] with explicit arguments (the first is the program name).
pub fn main_with_args<F: Flow, I>(args: I) -> ExitCode
where
    I: IntoIterator,
    I::Item: Into<std::ffi::OsString> + Clone,
{
    let args: Vec<std::ffi::OsString> = args.into_iter().map(Into::into).collect();
    let argv: Vec<String> = args
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let matches = match command::<F>().try_get_matches_from(&args) {
        Ok(m) => m,
        Err(e) => return usage_error(&e),
    };
    // Flushed when dropped, after the command (and its spans) ended.
    #[cfg(feature = "otel")]
    let _otel = otel::install_from_env(F::NAME);
    match dispatch::<F>(&matches, argv) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", chain(&e));
            match e {
                Error::InvalidInput(_)
                | Error::NotFound(_)
                | Error::Resources(_)
                | Error::Datastore { .. } => ExitCode::from(2),
                _ => ExitCode::from(1),
            }
        }
    }
}

/// Help and version go to stdout; a usage error is one line on stderr, exit 2.
fn usage_error(e: &clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            let _ = e.print();
            ExitCode::SUCCESS
        }
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = e.print();
            ExitCode::from(2)
        }
        _ => {
            let rendered = e.render().to_string();
            let first = rendered
                .lines()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("invalid arguments");
            let first = first.trim_start_matches("error: ");
            // clap's "a similar argument exists" tip is on a later line: keep it on this one
            // (`--min_len` for `--min-len`, `--nam` for `--name`).
            use clap::error::{ContextKind, ContextValue};
            let hint = match e.get(ContextKind::SuggestedArg) {
                Some(ContextValue::String(s)) => format!("; did you mean `{s}`?"),
                Some(ContextValue::Strings(v)) if !v.is_empty() => {
                    format!("; did you mean `{}`?", v.join("` or `"))
                }
                _ => String::new(),
            };
            eprintln!("error: {first}{hint} (see --help)");
            ExitCode::from(2)
        }
    }
}

/// The clap command of flow `F`.
pub fn command<F: Flow>() -> Command {
    let graph = F::graph();
    let about = format!(
        "flow {} ({} steps) — powered by flowlib",
        F::NAME,
        graph.steps().len()
    );
    Command::new(F::NAME.to_string())
        .about(about)
        .subcommand_required(true)
        .arg_required_else_help(true)
        .arg(args::datastore_arg())
        .subcommand(run::command::<F>())
        .subcommand(resume::command::<F>())
        .subcommand(show::command())
        .subcommand(check::command())
        .subcommand(runs::command())
        .subcommand(dump::command())
        .subcommand(verify::command())
        .subcommand(gc::command())
        .subcommand(logs::command())
        .subcommand(report::command())
        .subcommand(cancel::command())
        .subcommand(cache::command())
        .subcommand(tag::command())
        .subcommand(tag::untag_command())
        .subcommand(compare::command())
        .subcommand(alias::command())
        .subcommand(lineage::command())
        .subcommand(step::command())
        .subcommand(step::task_exec_command())
        .subcommand(export::command())
        .subcommand(export::init_command::<F>())
        .subcommand(export::end_command())
}

fn dispatch<F: Flow>(m: &ArgMatches, argv: Vec<String>) -> Result<ExitCode> {
    match m.subcommand() {
        Some(("run", sub)) => run::exec::<F>(m, sub, argv),
        Some(("resume", sub)) => resume::exec::<F>(m, sub, argv),
        Some(("show", sub)) => show::exec::<F>(sub),
        Some(("check", _)) => check::exec::<F>(),
        Some(("runs", sub)) => runs::exec::<F>(m, sub),
        Some(("dump", sub)) => dump::exec::<F>(m, sub),
        Some(("verify", sub)) => verify::exec::<F>(m, sub),
        Some(("gc", sub)) => gc::exec(m, sub),
        Some(("step", sub)) => step::exec::<F>(m, sub),
        Some(("task-exec", sub)) => step::task_exec::<F>(m, sub),
        Some(("logs", sub)) => logs::exec::<F>(m, sub),
        Some(("report", sub)) => report::exec::<F>(m, sub),
        Some(("cancel", sub)) => cancel::exec::<F>(m, sub),
        Some(("cache", sub)) => cache::exec::<F>(m, sub),
        Some(("tag", sub)) => tag::exec::<F>(m, sub),
        Some(("untag", sub)) => tag::untag::<F>(m, sub),
        Some(("compare", sub)) => compare::exec::<F>(m, sub),
        Some(("alias", sub)) => alias::exec::<F>(m, sub),
        Some(("lineage", sub)) => lineage::exec::<F>(m, sub),
        Some(("export", sub)) => export::exec::<F>(m, sub),
        Some(("argo-init", sub)) => export::init::<F>(m, sub, argv),
        Some(("argo-end", sub)) => export::end::<F>(m, sub),
        _ => unreachable!("clap requires a subcommand"),
    }
}

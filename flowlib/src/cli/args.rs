//! Arguments several commands share: the datastore, flow parameters, resource limits.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use clap::{Arg, ArgAction, ArgMatches, Command};

use crate::error::{Error, Result};
use crate::exec::{Executor, Limits, With};
use crate::flow::Flow;
use crate::run::progress::ProgressMode;
use crate::run::RunOptions;
use crate::store::{Datastore, OpenMode, DATASTORE_ENV, DEFAULT_DATASTORE};

/// `--datastore`, global to every command.
pub(super) fn datastore_arg() -> Arg {
    Arg::new("datastore")
        .long("datastore")
        .global(true)
        .value_name("URL")
        .help(format!(
            "Datastore: a path, file://, s3://, gs://, az:// or memory:// URL [env: {DATASTORE_ENV}] [default: {DEFAULT_DATASTORE}]"
        ))
}

/// The datastore `--datastore` (or the environment, or the default) names.
pub(super) fn open(m: &ArgMatches, mode: OpenMode) -> Result<Datastore> {
    Datastore::from_env_or(m.get_one::<String>("datastore").map(String::as_str), mode)
}

/// `cmd` with the arguments of `run` and `resume`: `F`'s parameters (required ones
/// enforced only if `params_required`), resource limits, and progress output.
pub(super) fn with_run_args<F: Flow>(cmd: Command, params_required: bool) -> Command {
    cmd.args(param_args::<F>(params_required))
        .args(limit_args())
        .arg(
            Arg::new("tag")
                .long("tag")
                .value_name("KEY=VALUE")
                .action(clap::ArgAction::Append)
                .help("Tag the new run (repeatable); see `tag`"),
        )
}

/// One `--flag` per parameter of `F`, with its help and default.
pub(super) fn param_args<F: Flow>(required_enforced: bool) -> Vec<Arg> {
    let mut defaults = F::default();
    defaults.__apply_param_defaults();
    F::FIELDS
        .iter()
        .enumerate()
        .filter_map(|(i, f)| f.param.map(|p| (i, f, p)))
        .map(|(i, f, p)| {
            let default = defaults
                .__field_json(i)
                .map(|v| v.to_string())
                .unwrap_or_default();
            let mut help = p.help.to_string();
            if p.required {
                help.push_str(" [required]");
            } else {
                help.push_str(&format!(" [default: {default}]"));
            }
            let mut a = Arg::new(f.name)
                .long(p.flag)
                .help(help)
                .value_name(f.ty.to_uppercase().replace(['<', '>', ' '], "_"))
                .action(ArgAction::Set)
                .allow_hyphen_values(true);
            if p.is_bool {
                a = a
                    .num_args(0..=1)
                    .default_missing_value("true")
                    .value_name("BOOL");
            }
            if p.required && required_enforced {
                a = a.required(true);
            }
            a
        })
        .collect()
}

/// Resource limits and progress output of `run` and `resume`.
fn limit_args() -> Vec<Arg> {
    vec![
        Arg::new("max-workers")
            .long("max-workers")
            .value_name("N")
            .value_parser(clap::value_parser!(usize))
            .help("CPU slots for tasks [default: the number of CPUs]"),
        Arg::new("max-memory")
            .long("max-memory")
            .value_name("SIZE")
            .help("Memory budget for tasks, like 8GiB [default: the machine's memory]"),
        Arg::new("quiet")
            .long("quiet")
            .short('q')
            .action(ArgAction::SetTrue)
            .help("Print only the summary and failures"),
        Arg::new("plain")
            .long("plain")
            .action(ArgAction::SetTrue)
            .conflicts_with("quiet")
            .help("One line per finished task, even on a terminal"),
        with_arg(),
        Arg::new("pending-timeout")
            .long("pending-timeout")
            .value_name("DURATION")
            .help("Fail a Slurm task whose job is still pending after this long, like 30m [default: wait]"),
    ]
}

/// `--with EXECUTOR[:STEP,...]`, repeatable: where steps run.
pub(super) fn with_arg() -> Arg {
    Arg::new("with")
        .long("with")
        .value_name("EXECUTOR[:STEPS]")
        .action(ArgAction::Append)
        .help("Run steps on threads (default), processes, slurm or batch (AWS Batch, with the `batch` feature): `--with slurm` for every step, `--with slurm:train,score` for some")
}

/// The `--with` choices of `m`.
pub(super) fn with_of(m: &ArgMatches) -> Result<With> {
    let values: Vec<String> = m
        .get_many::<String>("with")
        .map(|v| v.cloned().collect())
        .unwrap_or_default();
    let mut with = With::parse(&values)?;
    if let Some(t) = m.try_get_one::<String>("pending-timeout").ok().flatten() {
        with = with.with_pending_timeout(Some(parse_duration(t)?));
    }
    with.remote.max_parallel = m
        .try_get_one::<usize>("max-workers")
        .ok()
        .flatten()
        .copied();
    Ok(with)
}

/// The parameter values `m` was given: (field name, command-line text).
pub(super) fn params_of<F: Flow>(m: &ArgMatches) -> Vec<(String, String)> {
    F::FIELDS
        .iter()
        .filter(|f| f.param.is_some())
        .filter_map(|f| {
            m.get_one::<String>(f.name)
                .map(|v| (f.name.to_string(), v.clone()))
        })
        .collect()
}

/// The options of `run` and `resume`, and the executor they need. Bad requests
/// (resources, parameters) are refused here, before anything is written.
pub(super) fn prepare<F: Flow>(
    sub: &ArgMatches,
    argv: Vec<String>,
) -> Result<(RunOptions, Box<dyn Executor>)> {
    let opts = run_options::<F>(sub, argv)?;
    let executor = crate::run::prepare::<F>(&opts)?;
    Ok((opts, executor))
}

fn run_options<F: Flow>(m: &ArgMatches, argv: Vec<String>) -> Result<RunOptions> {
    let max_memory = match m.get_one::<String>("max-memory") {
        Some(s) => Some(parse_size(s)?),
        None => None,
    };
    if m.get_one::<usize>("max-workers") == Some(&0) {
        return Err(Error::invalid("--max-workers must be at least 1"));
    }
    let progress = if m.get_flag("quiet") {
        ProgressMode::Quiet
    } else if m.get_flag("plain") {
        ProgressMode::Plain
    } else {
        ProgressMode::Auto
    };
    let cancel = Arc::new(AtomicBool::new(false));
    // Ctrl-C (or SIGTERM) cancels the run cleanly; a second one exits at once.
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        let _ = signal_hook::flag::register_conditional_shutdown(sig, 130, cancel.clone());
        let _ = signal_hook::flag::register(sig, cancel.clone());
    }
    Ok(RunOptions::default()
        .with_limits(Limits::detect(
            m.get_one::<usize>("max-workers").copied(),
            max_memory,
        ))
        .with_progress(progress)
        .with_argv(argv)
        .with_executors({
            let mut w = with_of(m)?;
            w.remote.announce = progress != ProgressMode::Quiet;
            w
        })
        .with_cancel_flag(cancel)
        .with_tags(
            m.get_many::<String>("tag")
                .into_iter()
                .flatten()
                .map(|t| crate::meta::tags::parse_assignment(t))
                .collect::<Result<Vec<_>>>()?,
        )
        .with_params(params_of::<F>(m)))
}

/// A size from the command line (`8GiB`), in the grammar `#[resources(memory)]` uses.
pub(super) fn parse_size(s: &str) -> Result<u64> {
    flowlib_units::parse_size(s).map_err(|e| Error::invalid(e.to_string()))
}

/// A duration from the command line (`24h`, `500ms`).
pub(super) fn parse_duration(s: &str) -> Result<std::time::Duration> {
    flowlib_units::parse_duration(s).map_err(|e| Error::invalid(e.to_string()))
}

/// `--format text|json` for commands that print a report.
pub(super) fn format_arg() -> Arg {
    Arg::new("format")
        .long("format")
        .value_parser(["text", "json"])
        .default_value("text")
        .help("Output format: text for people, JSON for tools")
}

/// Print `report` in the format `sub` asks for: its text rendering, or pretty JSON.
pub(super) fn print_report<R: serde::Serialize>(
    sub: &ArgMatches,
    report: &R,
    text: impl FnOnce(&R) -> String,
) {
    match sub.get_one::<String>("format").map(String::as_str) {
        Some("json") => {
            let json = serde_json::to_string_pretty(report).expect("reports serialize");
            println!("{json}");
        }
        _ => print!("{}", text(report)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("8GiB").unwrap(), 8 << 30);
        assert_eq!(parse_size("1024").unwrap(), 1024);
        assert!(parse_size("8GB").is_err());
        assert!(parse_size("lots").is_err());
    }
}

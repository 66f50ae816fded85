//! The command line every flow binary gets from [`flowlib::main`](crate::main).
//!
//! Every user error is one line on stderr and a non-zero exit: 2 for bad input, 1 for a
//! run that failed or an operation that could not complete.

use std::io::Write;
use std::process::ExitCode;

use clap::{Arg, ArgAction, ArgMatches, Command};

use crate::client::Run;
use crate::error::{chain, Error, Result};
use crate::exec::Limits;
use crate::flow::graph::format_bytes;
use crate::flow::Flow;
use crate::meta::query::successful;
use crate::meta::{RunInfo, RunStatus};
use crate::run::progress::ProgressMode;
use crate::run::{self, ResumeOptions, RunOptions, RunSummary};
use crate::store::{Datastore, Digest, OpenMode, DATASTORE_ENV, DEFAULT_DATASTORE};
use crate::task;

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
        Err(e) => {
            use clap::error::ErrorKind;
            return match e.kind() {
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
                    eprintln!("error: {first} (see --help)");
                    ExitCode::from(2)
                }
            };
        }
    };
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

fn datastore_arg() -> Arg {
    Arg::new("datastore")
        .long("datastore")
        .global(true)
        .value_name("URL")
        .help(format!(
            "Datastore: a path, file://, s3://, gs://, az:// or memory:// URL [env: {DATASTORE_ENV}] [default: {DEFAULT_DATASTORE}]"
        ))
}

fn param_args<F: Flow>(required_enforced: bool) -> Vec<Arg> {
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
    ]
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
        .arg(datastore_arg())
        .subcommand(
            Command::new("run")
                .about("Run the flow")
                .args(param_args::<F>(true))
                .args(limit_args()),
        )
        .subcommand(
            Command::new("resume")
                .about("Resume a run: reuse its committed tasks, run the failed or missing ones (or STEP and everything after it)")
                .arg(Arg::new("step").value_name("STEP").help("Re-run this step and everything downstream of it"))
                .arg(
                    Arg::new("origin")
                        .long("origin")
                        .value_name("RUN")
                        .help("The run to resume [default: the latest run of this flow]"),
                )
                .args(param_args::<F>(false))
                .args(limit_args()),
        )
        .subcommand(
            Command::new("show").about("Show the graph").arg(
                Arg::new("format")
                    .long("format")
                    .value_parser(["text", "mermaid", "dot", "json"])
                    .default_value("text")
                    .help("Output format"),
            ),
        )
        .subcommand(Command::new("check").about("Check the flow and that this machine can run every step"))
        .subcommand(
            Command::new("runs").about("List runs with their status and times").arg(
                Arg::new("limit")
                    .long("limit")
                    .short('n')
                    .value_parser(clap::value_parser!(usize))
                    .help("Show only the last N runs"),
            ),
        )
        .subcommand(
            Command::new("dump")
                .about("Show a run, a step, a task, or one artifact (as JSON)")
                .arg(
                    Arg::new("target")
                        .required(true)
                        .value_name("RUN[/STEP[/TASK]]")
                        .help("`latest` names the latest run"),
                )
                .arg(Arg::new("artifact").value_name("ARTIFACT")),
        )
        .subcommand(
            Command::new("verify")
                .about("Check that every committed artifact exists and hashes to its address")
                .arg(Arg::new("run").long("run").value_name("RUN").help("Only this run")),
        )
        .subcommand(
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
                ),
        )
        .subcommand(
            Command::new("step")
                .about("Run one task of an existing run (used by execution backends)")
                .hide(true)
                .arg(
                    Arg::new("spec")
                        .long("spec")
                        .value_name("DIGEST")
                        .conflicts_with_all(["name", "run", "task", "attempt"])
                        .help("Run the task spec stored under this digest (what executors run)"),
                )
                .arg(Arg::new("name").required_unless_present("spec").value_name("STEP"))
                .arg(
                    Arg::new("run")
                        .long("run")
                        .required_unless_present("spec")
                        .value_name("RUN"),
                )
                .arg(
                    Arg::new("task")
                        .long("task")
                        .visible_alias("index")
                        .default_value("_")
                        .value_name("INDEX")
                        .help("The task's foreach index (`2.5`), or its id (`fit/2.5`)"),
                )
                .arg(
                    Arg::new("attempt")
                        .long("attempt")
                        .default_value("0")
                        .value_parser(clap::value_parser!(u32)),
                ),
        )
}

fn open(m: &ArgMatches, mode: OpenMode) -> Result<Datastore> {
    Datastore::from_env_or(m.get_one::<String>("datastore").map(String::as_str), mode)
}

fn params_of<F: Flow>(m: &ArgMatches) -> Vec<(String, String)> {
    F::FIELDS
        .iter()
        .filter(|f| f.param.is_some())
        .filter_map(|f| {
            m.get_one::<String>(f.name)
                .map(|v| (f.name.to_string(), v.clone()))
        })
        .collect()
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
    Ok(RunOptions {
        limits: Limits::detect(m.get_one::<usize>("max-workers").copied(), max_memory),
        progress,
        params: params_of::<F>(m),
        argv,
    })
}

/// Parse `8GiB`-style sizes (binary units; plain numbers are bytes).
/// A size from the command line (`8GiB`), in the grammar `#[resources(memory)]` uses.
pub(crate) fn parse_size(s: &str) -> Result<u64> {
    flowlib_units::parse_size(s).map_err(|e| Error::invalid(e.to_string()))
}

fn dispatch<F: Flow>(m: &ArgMatches, argv: Vec<String>) -> Result<ExitCode> {
    match m.subcommand() {
        Some(("run", sub)) => {
            let opts = run_options::<F>(sub, argv)?;
            // Bad requests (resources, parameters) are refused before anything is written.
            let executor = run::prepare::<F>(&opts)?;
            let state = run::initial_state::<F>(&opts.params)?;
            let ds = open(m, OpenMode::Create)?;
            let summary = run::run_prepared::<F>(&ds, &opts, executor, state)?;
            Ok(report(&summary))
        }
        Some(("resume", sub)) => {
            let opts = run_options::<F>(sub, argv)?;
            let executor = run::prepare::<F>(&opts)?;
            let ds = open(m, OpenMode::Existing)?;
            let ropts = ResumeOptions {
                origin: sub.get_one::<String>("origin").cloned(),
                step: sub.get_one::<String>("step").cloned(),
            };
            let summary = run::resume_prepared::<F>(&ds, &opts, &ropts, executor)?;
            Ok(report(&summary))
        }
        Some(("show", sub)) => {
            let g = F::graph();
            let out = match sub.get_one::<String>("format").map(String::as_str) {
                Some("mermaid") => g.to_mermaid(),
                Some("dot") => g.to_dot(),
                Some("json") => {
                    let mut s = serde_json::to_string_pretty(&serde_json::json!({
                        "flow": g.flow(),
                        "digest": g.digest().to_string(),
                        "steps": g.steps(),
                    }))
                    .expect("graph serializes");
                    s.push('\n');
                    s
                }
                _ => g.to_text(),
            };
            print!("{out}");
            Ok(ExitCode::SUCCESS)
        }
        Some(("check", _)) => {
            let g = F::graph();
            let limits = Limits::detect(None, None);
            let executor = run::prepare::<F>(&RunOptions {
                limits: limits.clone(),
                ..RunOptions::default()
            })?;
            println!(
                "flow {}: {} steps, {} artifacts, graph {}: ok (executor {}; this machine: {} CPUs, {}, {} GPUs)",
                F::NAME,
                g.steps().len(),
                F::FIELDS.len(),
                g.digest(),
                executor.name(),
                limits.max_workers,
                format_bytes(limits.max_memory),
                limits.gpus
            );
            Ok(ExitCode::SUCCESS)
        }
        Some(("runs", sub)) => {
            let ds = open(m, OpenMode::Existing)?;
            list_runs::<F>(&ds, sub.get_one::<usize>("limit").copied())?;
            Ok(ExitCode::SUCCESS)
        }
        Some(("dump", sub)) => {
            let ds = open(m, OpenMode::Existing)?;
            let target = sub.get_one::<String>("target").expect("required");
            dump::<F>(
                &ds,
                target,
                sub.get_one::<String>("artifact").map(String::as_str),
            )?;
            Ok(ExitCode::SUCCESS)
        }
        Some(("verify", sub)) => {
            let ds = open(m, OpenMode::Existing)?;
            let problems = crate::maintenance::verify(
                &ds,
                Some(F::NAME),
                sub.get_one::<String>("run").map(String::as_str),
            )?;
            Ok(if problems == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Some(("gc", sub)) => {
            let ds = open(m, OpenMode::Existing)?;
            let grace_text = sub.get_one::<String>("grace").expect("has default");
            let grace = flowlib_units::parse_duration(grace_text)
                .map_err(|e| Error::invalid(e.to_string()))?;
            crate::maintenance::gc(&ds, sub.get_flag("dry-run"), grace)?;
            Ok(ExitCode::SUCCESS)
        }
        Some(("step", sub)) if sub.contains_id("spec") => {
            let ds = open(m, OpenMode::Existing)?;
            let text = sub.get_one::<String>("spec").expect("present");
            let digest: Digest = text
                .parse()
                .map_err(|e| Error::invalid(format!("invalid --spec {text:?}: {e}")))?;
            let outcome = task::run_spec::<F>(&ds, &digest)?;
            Ok(step_outcome(&format!("spec {digest}"), outcome))
        }
        Some(("step", sub)) => {
            let ds = open(m, OpenMode::Existing)?;
            let step = sub
                .get_one::<String>("name")
                .ok_or_else(|| Error::invalid("`step` needs a step name (or --spec <digest>)"))?;
            let run = sub.get_one::<String>("run").expect("required");
            let index = sub.get_one::<String>("task").expect("has default");
            let attempt = *sub.get_one::<u32>("attempt").expect("has default");
            let index = index.strip_prefix(&format!("{step}/")).unwrap_or(index);
            let task = if index == "_" || index.is_empty() {
                step.clone()
            } else {
                format!("{step}/{index}")
            };
            let outcome = task::run_task::<F>(&ds, run, &task, attempt)?;
            Ok(step_outcome(
                &format!("task {task} of run {run} attempt {attempt}"),
                outcome,
            ))
        }
        _ => unreachable!("clap requires a subcommand"),
    }
}

/// Say how a `step` invocation ended; exit 0 only when it committed.
fn step_outcome(what: &str, outcome: task::TaskOutcome) -> ExitCode {
    match outcome {
        task::TaskOutcome::Committed => {
            eprintln!("flowlib: {what} committed");
            ExitCode::SUCCESS
        }
        task::TaskOutcome::Failed(e) => {
            eprintln!("flowlib: {what} failed: {e}");
            ExitCode::from(1)
        }
        task::TaskOutcome::AlreadyCommitted => {
            eprintln!("flowlib: {what} was already committed (or fenced) by another writer");
            ExitCode::from(1)
        }
    }
}

fn report(s: &RunSummary) -> ExitCode {
    let secs = s.duration.as_secs_f64();
    let reused = if s.tasks_reused > 0 {
        format!(", {} reused", s.tasks_reused)
    } else {
        String::new()
    };
    match s.status {
        RunStatus::Succeeded => {
            eprintln!(
                "flowlib: run {} succeeded in {secs:.2}s: {} tasks{reused}",
                s.run_id,
                s.tasks_ok + s.tasks_reused
            );
            ExitCode::SUCCESS
        }
        _ => {
            eprintln!(
                "flowlib: run {} failed in {secs:.2}s: {} task{} failed, {} succeeded{reused}",
                s.run_id,
                s.failures.len(),
                if s.failures.len() == 1 { "" } else { "s" },
                s.tasks_ok
            );
            for (task, err) in &s.failures {
                eprintln!("  {task}: {err}");
            }
            if !s.not_run.is_empty() {
                eprintln!(
                    "  not run because of the failures: {}",
                    s.not_run.join(", ")
                );
            }
            eprintln!("  fix the problem, then continue with `resume` (finished tasks are reused)");
            ExitCode::from(1)
        }
    }
}

fn status_text(i: &RunInfo) -> String {
    match i.status() {
        RunStatus::Running => match i.is_alive() {
            Some(false) => "killed".into(),
            _ => "running".into(),
        },
        s => s.to_string(),
    }
}

fn list_runs<F: Flow>(ds: &Datastore, limit: Option<usize>) -> Result<()> {
    let mut runs = ds.runs(F::NAME)?;
    if let Some(n) = limit {
        let skip = runs.len().saturating_sub(n);
        runs.drain(..skip);
    }
    let mut out = std::io::stdout().lock();
    if runs.is_empty() {
        if limit != Some(0) {
            let _ = writeln!(out, "no runs of {} in {}", F::NAME, ds.url());
        }
        return Ok(());
    }
    let _ = writeln!(
        out,
        "{:<32} {:<10} {:<24} {:>10} {:>7}  details",
        "RUN", "STATUS", "STARTED", "DURATION", "TASKS"
    );
    for i in &runs {
        let r = &i.record;
        let (dur, tasks) = match &i.end {
            Some(e) => (
                format!("{:.2}s", e.duration_ms as f64 / 1000.0),
                e.tasks_ok.to_string(),
            ),
            None => ("-".into(), "-".into()),
        };
        let mut details = Vec::new();
        if let Some(res) = &r.resume {
            details.push(format!(
                "resumed {} ({} reused)",
                res.origin, res.reused_tasks
            ));
        }
        if !r.params.is_empty() {
            let p: Vec<String> = r.params.iter().map(|(k, v)| format!("{k}={v}")).collect();
            details.push(p.join(" "));
        }
        if let Some(e) = &i.end {
            if !e.failures.is_empty() {
                details.push(format!(
                    "failed: {}",
                    e.failures
                        .iter()
                        .map(|(t, _)| t.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
        }
        let _ = writeln!(
            out,
            "{:<32} {:<10} {:<24} {:>10} {:>7}  {}",
            r.run_id,
            status_text(i),
            r.started,
            dur,
            tasks,
            details.join("; ")
        );
    }
    Ok(())
}

fn preview(v: &serde_json::Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 60 {
        format!("{}…", s.chars().take(59).collect::<String>())
    } else {
        s
    }
}

fn dump<F: Flow>(ds: &Datastore, target: &str, artifact: Option<&str>) -> Result<()> {
    if target.split('/').any(|p| p == ".." || p == ".") {
        return Err(Error::invalid(format!(
            "invalid run id in `{}`: use <run>[/<step>[/<index>]], without `.` or `..` parts",
            target.escape_default()
        )));
    }
    let mut parts = target.splitn(2, '/');
    let run_id = parts.next().unwrap_or("");
    let rest = parts.next();
    let run_id = if run_id == "latest" {
        ds.latest_run(F::NAME)?.ok_or_else(|| {
            Error::not_found(format!("no runs of flow {} in {}", F::NAME, ds.url()))
        })?
    } else {
        crate::meta::validate_run_id(run_id)?;
        run_id.to_string()
    };
    let run = Run::<F>::open(ds, &run_id)?;
    let mut out = std::io::stdout().lock();
    let Some(rest) = rest.filter(|r| !r.is_empty()) else {
        if artifact.is_some() {
            return Err(Error::invalid(
                "name a task to dump an artifact: dump <run>/<step>[/<index>] <artifact>",
            ));
        }
        let i = run.info();
        let r = &i.record;
        let _ = writeln!(out, "run {} of {}: {}", r.run_id, r.flow, status_text(i));
        let _ = writeln!(out, "  started   {}", r.started);
        if let Some(e) = &i.end {
            let _ = writeln!(
                out,
                "  finished  {} ({:.2}s)",
                e.finished,
                e.duration_ms as f64 / 1000.0
            );
        }
        let _ = writeln!(out, "  graph     {}", r.graph_digest);
        let _ = writeln!(
            out,
            "  code      {} {}{}",
            r.code.exe,
            r.code.exe_digest.map(|d| d.to_string()).unwrap_or_default(),
            r.code
                .git_commit
                .as_ref()
                .map(|c| format!(" (git {c})"))
                .unwrap_or_default()
        );
        let _ = writeln!(
            out,
            "  host      {} (user {}, pid {})",
            r.host, r.user, r.pid
        );
        if let Some(res) = &r.resume {
            let _ = writeln!(
                out,
                "  resumed   {}{} ({} tasks reused)",
                res.origin,
                res.step
                    .as_ref()
                    .map(|s| format!(" from step {s}"))
                    .unwrap_or_default(),
                res.reused_tasks
            );
            for (k, (a, b)) in &res.changed_params {
                let _ = writeln!(out, "  changed   {k}: {a} -> {b}");
            }
        }
        for (k, v) in &r.params {
            let _ = writeln!(out, "  param     {k} = {v}");
        }
        let _ = writeln!(out, "steps:");
        let ok = successful(run.attempts().to_vec());
        for s in F::graph().steps() {
            let n = ok.keys().filter(|(st, _)| st == s.name).count();
            let failed: Vec<String> = run
                .attempts()
                .iter()
                .filter(|a| a.step == s.name && !a.status.is_success())
                .map(|a| format!("{} attempt {} {}", a.task_id(), a.source.attempt, a.status))
                .collect();
            let _ = write!(
                out,
                "  {:<20} {n} task{} ok",
                s.name,
                if n == 1 { "" } else { "s" }
            );
            if !failed.is_empty() {
                let _ = write!(out, "; {}", failed.join(", "));
            }
            let _ = writeln!(out);
        }
        return Ok(());
    };

    let (step, index) = match rest.split_once('/') {
        Some((s, i)) => (s, Some(i)),
        None => (rest, None),
    };
    let view = run.step(step)?;
    let task = match index {
        Some(i) => run.task(&format!("{step}/{i}")).or_else(|e| {
            if i == "_" || i.is_empty() {
                view.only_task()
            } else {
                Err(e)
            }
        })?,
        None => {
            if view.len() != 1 {
                if artifact.is_some() {
                    return Err(Error::invalid(format!(
                        "step `{step}` has {} tasks: name one, like {run_id}/{step}/0",
                        view.len()
                    )));
                }
                let _ = writeln!(
                    out,
                    "step {step} of run {run_id}: {} successful tasks",
                    view.len()
                );
                for t in view.tasks() {
                    let m = t.manifest();
                    let _ = writeln!(
                        out,
                        "  {:<24} attempt {} {} ({:.1} ms)",
                        t.id(),
                        m.attempt,
                        m.status,
                        m.timings.load_ms + m.timings.step_ms + m.timings.store_ms
                    );
                }
                return Ok(());
            }
            view.only_task()?
        }
    };
    match artifact {
        Some(name) => {
            let v = task.artifact_json(name)?;
            let _ = writeln!(
                out,
                "{}",
                serde_json::to_string_pretty(&v).expect("JSON renders")
            );
        }
        None => {
            let m = task.manifest();
            let a = task.attempt();
            let _ = writeln!(
                out,
                "task {} of run {}: attempt {} {}{}",
                task.id(),
                run_id,
                m.attempt,
                m.status,
                if a.reused {
                    format!(" (reused from run {})", a.source.run)
                } else {
                    String::new()
                }
            );
            if let Some(e) = &m.error {
                let _ = writeln!(out, "  error: {e}");
            }
            let parents: Vec<String> = m.parents.iter().map(|p| p.task_id()).collect();
            if !parents.is_empty() {
                let shown: Vec<&str> = parents.iter().take(8).map(String::as_str).collect();
                let _ = writeln!(
                    out,
                    "  parents: {}{}",
                    shown.join(", "),
                    if parents.len() > 8 {
                        format!(" and {} more", parents.len() - 8)
                    } else {
                        String::new()
                    }
                );
            }
            let _ = writeln!(
                out,
                "  timings: load {:.1} ms, step {:.1} ms, store {:.1} ms",
                m.timings.load_ms, m.timings.step_ms, m.timings.store_ms
            );
            let _ = writeln!(out, "artifacts:");
            for (name, blob) in &m.artifacts {
                let v = task
                    .artifact_json(name)
                    .map(|v| preview(&v))
                    .unwrap_or_else(|e| format!("<{}>", chain(&e)));
                let _ = writeln!(
                    out,
                    "  {:<16} {} {:>10}  {}",
                    name,
                    blob.digest.short(),
                    format_bytes(blob.size),
                    v
                );
            }
        }
    }
    Ok(())
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

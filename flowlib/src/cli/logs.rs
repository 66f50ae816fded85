//! `logs`: print what a task attempt wrote to stdout or stderr, as stored while it ran.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Arg, ArgAction, ArgMatches, Command};

use crate::cli::args::open;
use crate::error::{Error, Result};
use crate::flow::Flow;
use crate::meta::commit::read_commit;
use crate::meta::{logs, IndexPath, TaskRef};
use crate::store::{layout, Datastore, OpenMode};

pub(super) fn command() -> Command {
    Command::new("logs")
        .about("Print a task's captured output (stdout, or --stderr)")
        .arg(
            Arg::new("task")
                .required(true)
                .value_name("RUN/STEP[/INDEX]")
                .help("The task: `latest/train`, `1733...-ab12/work/3`"),
        )
        .arg(
            Arg::new("attempt")
                .long("attempt")
                .value_parser(clap::value_parser!(u32))
                .help("Attempt number (0 first) [default: the last one]"),
        )
        .arg(
            Arg::new("stderr")
                .long("stderr")
                .action(ArgAction::SetTrue)
                .help("Print stderr instead of stdout"),
        )
        .arg(
            Arg::new("follow")
                .long("follow")
                .short('f')
                .action(ArgAction::SetTrue)
                .help("Keep printing new output until the attempt ends"),
        )
}

pub(super) fn exec<F: Flow>(m: &ArgMatches, sub: &ArgMatches) -> Result<ExitCode> {
    let ds = open(m, OpenMode::Existing)?;
    let spec = sub.get_one::<String>("task").expect("required");
    let mut parts = spec.splitn(3, '/');
    let (run, step) = match (parts.next(), parts.next()) {
        (Some(r), Some(s)) if !r.is_empty() && !s.is_empty() => (r, s),
        _ => {
            return Err(Error::invalid(format!(
            "logs {spec}: give RUN/STEP or RUN/STEP/INDEX, like `latest/train` or `latest/work/3`"
        )))
        }
    };
    let graph = F::graph();
    let st = graph
        .step(step)
        .ok_or_else(|| Error::invalid(format!("flow {} has no step `{step}`", F::NAME)))?;
    let index = match parts.next() {
        Some(i) => IndexPath::parse(i).ok_or_else(|| {
            Error::invalid(format!(
                "logs {spec}: bad task index `{i}` (dotted numbers, like `3` or `2.5`)"
            ))
        })?,
        None => IndexPath::root(),
    };
    if index.0.len() != st.depth {
        return Err(Error::invalid(format!(
            "logs {spec}: step `{step}` is inside {} foreach split(s): give its index, like `{run}/{step}/{}`",
            st.depth,
            vec!["0"; st.depth].join(".")
        )));
    }
    let run = ds.resolve_run(F::NAME, run)?;
    let attempt = match sub.get_one::<u32>("attempt") {
        Some(a) => *a,
        None => last_attempt(&ds, F::NAME, &run, step, &index)?.ok_or_else(|| {
            Error::not_found(format!(
                "no output was stored for task {} of run {run}: it never ran, or ran on the thread executor without ctx.log",
                crate::meta::task_id(step, &index)
            ))
        })?,
    };
    let task = TaskRef {
        run: run.clone(),
        step: step.to_string(),
        index,
        attempt,
    };
    let stream = if sub.get_flag("stderr") {
        "stderr"
    } else {
        "stdout"
    };
    let mut next = 0;
    let mut out = std::io::stdout().lock();
    loop {
        let (n, bytes) = logs::read_from(&ds, F::NAME, &task, stream, next)?;
        out.write_all(&bytes)
            .and_then(|_| out.flush())
            .map_err(|e| Error::invalid(format!("cannot write to stdout: {e}")))?;
        let grew = n != next;
        next = n;
        if !sub.get_flag("follow") || grew {
            if !sub.get_flag("follow") {
                break;
            }
            std::thread::sleep(Duration::from_millis(300));
            continue;
        }
        // No new chunk: stop once the attempt has its commit record (it ended).
        if read_commit(&ds, F::NAME, &task).ok().flatten().is_some() {
            let (n, bytes) = logs::read_from(&ds, F::NAME, &task, stream, next)?;
            let _ = out.write_all(&bytes);
            if n == next {
                break;
            }
            next = n;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    Ok(ExitCode::SUCCESS)
}

/// The highest attempt number with stored output for the task.
fn last_attempt(
    ds: &Datastore,
    flow: &str,
    run: &str,
    step: &str,
    index: &IndexPath,
) -> Result<Option<u32>> {
    let dir = layout::logs(flow, run, step, &index.dir_name(), 0);
    let parent = dir
        .trim_end_matches('/')
        .rsplit_once('/')
        .map(|(p, _)| format!("{p}/"))
        .unwrap_or_default();
    let stem = format!("{}@", index.dir_name());
    Ok(ds
        .list_dirs(&parent)?
        .into_iter()
        .filter_map(|d| {
            let name = d.trim_end_matches('/').rsplit('/').next()?.to_string();
            name.strip_prefix(&stem)?.parse::<u32>().ok()
        })
        .max())
}

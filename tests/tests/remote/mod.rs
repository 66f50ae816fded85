//! The executors that run tasks outside the driver process: `--with processes` (a child per
//! task) and `--with slurm` (a real single-node Slurm, started by `scripts/slurm.sh`; see
//! `slurm.rs` for when those tests skip). Both drive the `remoteflow` fixture, whose `work`
//! step can crash, run out of memory, time out or exit without a result on demand.

#[cfg(feature = "batch")]
mod batch;
#[cfg(feature = "kubernetes")]
mod kubernetes;
mod processes;
mod slurm;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Output;

use flowlib::{Datastore, OpenMode, RunInfo};
use flowlib_testkit::{fixture, text, Sandbox};

/// `remoteflow` in `sb` with `args`: each task logs its pid to `tasks.log` (on Slurm too),
/// Slurm writes the jobs' own output under `slurm-out/`.
fn remote_cmd(sb: &Sandbox, args: &[&str]) -> std::process::Command {
    let mut c = sb.cmd(&fixture("remoteflow"));
    c.env("REMOTE_LOG", sb.path().join("tasks.log"))
        .env("FLOWLIB_SLURM_OUTPUT", sb.path().join("slurm-out"))
        .env("FLOWLIB_SLURM_EXPORT", "REMOTE_LOG")
        .args(args);
    c
}

/// Run `remoteflow` in `sb` with `args` to its end.
fn remote(sb: &Sandbox, args: &[&str]) -> Output {
    remote_cmd(sb, args).output().expect("spawn remoteflow")
}

/// Start `remoteflow` in `sb` with `args` in the background, its output piped.
fn spawn_remote(sb: &Sandbox, args: &[&str]) -> std::process::Child {
    remote_cmd(sb, args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn remoteflow")
}

/// Wait (at most two minutes) until task attempt `key` (`work/1@0`) has started.
fn wait_for_task(sb: &Sandbox, key: &str) {
    let t0 = std::time::Instant::now();
    while !task_pids(sb).contains_key(key) {
        assert!(t0.elapsed().as_secs() < 120, "{key} never started");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// `task attempt -> pids` from the fixture's task log.
fn task_pids(sb: &Sandbox) -> BTreeMap<String, Vec<u32>> {
    let text = std::fs::read_to_string(sb.path().join("tasks.log")).unwrap_or_default();
    let mut m: BTreeMap<String, Vec<u32>> = BTreeMap::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if let [task, attempt, pid] = f[..] {
            m.entry(format!("{task}@{attempt}"))
                .or_default()
                .push(pid.parse().expect("pid"));
        }
    }
    m
}

/// The latest run of the fixture in `sb`.
fn latest(sb: &Sandbox) -> RunInfo {
    let ds = Datastore::open(sb.datastore().to_str().unwrap(), OpenMode::Existing).unwrap();
    let id = ds.resolve_run("Remote", "latest").expect("a run");
    ds.run_info("Remote", &id).expect("run info")
}

/// The attempts of task `task` of the latest run (local datastore).
fn attempts(sb: &Sandbox, task: &str) -> Vec<flowlib::TaskAttempt> {
    let info = latest(sb);
    let ds = Datastore::open(sb.datastore().to_str().unwrap(), OpenMode::Existing).unwrap();
    ds.task_attempts("Remote", &info.record.run_id)
        .unwrap()
        .into_iter()
        .filter(|a| a.task_id() == task)
        .collect()
}

/// How many tasks a `resume` reused, from its start line (`(resuming R, N tasks reused ...)`).
#[track_caller]
fn reused_count(r: &Output) -> usize {
    stderr(r)
        .lines()
        .find_map(|l| {
            let (_, rest) = l.split_once("(resuming ")?;
            let n = rest.split(", ").nth(1)?.split(' ').next()?;
            n.parse::<usize>().ok()
        })
        .unwrap_or_else(|| panic!("no reuse count\n{}", text(r)))
}

#[track_caller]
fn assert_exit(o: &Output, code: i32) {
    assert_eq!(o.status.code(), Some(code), "{}", text(o));
    assert!(!stderr(o).contains("panicked"), "{}", text(o));
}

/// Whether process `pid` exists.
fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap_or_default()
            .contains(") Z ")
}

//! The executors that run tasks outside the driver process: `--with processes` (a child per
//! task) and `--with slurm` (a real single-node Slurm, started by `scripts/slurm.sh`; see
//! `slurm.rs` for when those tests skip). Both drive the `remoteflow` fixture, whose `work`
//! step can crash, run out of memory, time out or exit without a result on demand.

mod processes;
mod slurm;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Output;

use flowlib::{Datastore, OpenMode, RunInfo};
use flowlib_testkit::{fixture, text, Sandbox};

/// Run `remoteflow` in `sb` with `args`, logging each task's pid to `log`.
fn remote(sb: &Sandbox, args: &[&str]) -> Output {
    sb.cmd(&fixture("remoteflow"))
        .env("REMOTE_LOG", sb.path().join("tasks.log"))
        .env("FLOWLIB_SLURM_OUTPUT", sb.path().join("slurm-out"))
        .env("FLOWLIB_SLURM_EXPORT", "REMOTE_LOG")
        .args(args)
        .output()
        .expect("spawn remoteflow")
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

//! Experiment tracking: metrics, tags, search and compare, aliases, lineage and the untyped
//! client, driven through the `trackflow` fixture and the `train` example.

mod cli;
mod metrics;
mod readme;
mod records;

use std::process::Output;

use flowlib_testkit::{fixture, text, Sandbox};

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Run the tracking fixture with `args` in `sb` and return its output.
fn track(sb: &Sandbox, args: &[&str]) -> Output {
    sb.cmd(&fixture("trackflow"))
        .args(args)
        .output()
        .expect("spawn trackflow")
}

/// Run the tracking fixture, assert success, return the run id it announced.
#[track_caller]
fn track_ok(sb: &Sandbox, args: &[&str]) -> String {
    let o = track(sb, args);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    err.lines()
        .find(|l| l.starts_with("flowlib: run ") && l.contains(" succeeded"))
        .and_then(|l| l.split_whitespace().nth(2))
        .unwrap_or_else(|| panic!("no run id announced\n{}", text(&o)))
        .to_string()
}

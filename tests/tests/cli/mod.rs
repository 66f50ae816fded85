//! End-to-end tests of the command line every flow binary gets from `flowlib::main`,
//! driven through the `hello`, `branch` and `train` examples. Each test works in its own
//! [`Sandbox`] (a temp directory with its own `./.flowlib`), so they run in parallel.
//!
//! Values are checked twice where it matters: once in what the CLI prints, once in what the
//! run stored, read back through the library (`Datastore::artifact`, `run_info`, manifests).

mod bad_input;
mod datastore;
mod disk_full;
mod parents;
mod run;
mod show;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;

use flowlib::{Datastore, Digest, OpenMode};
use flowlib_testkit::{example, snapshot, text, Sandbox};

// ---------------------------------------------------------------------------------------
// helpers

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Assert a zero exit and no panic.
#[track_caller]
fn assert_ok(o: &Output) {
    assert_eq!(o.status.code(), Some(0), "expected success\n{}", text(o));
    assert!(!stderr(o).contains("panicked"), "{}", text(o));
}

/// The run id a `run` announced on stderr (`flowlib: run <id> succeeded ...`).
#[track_caller]
fn announced_run(o: &Output) -> String {
    let err = stderr(o);
    let line = err
        .lines()
        .find(|l| l.starts_with("flowlib: run ") && l.contains(" succeeded"))
        .unwrap_or_else(|| panic!("no `flowlib: run <id> succeeded` line\n{}", text(o)));
    line.split_whitespace()
        .nth(2)
        .expect("a run id after `flowlib: run`")
        .to_string()
}

/// Run example `name` with `args`, assert it succeeded, return the run id it announced.
#[track_caller]
fn run_ok(sb: &Sandbox, name: &str, args: &[&str]) -> String {
    let o = sb.run(name, args);
    assert_ok(&o);
    announced_run(&o)
}

/// Assert the shape of a bad-input failure: exit 2, nothing on stdout, exactly one
/// non-empty line on stderr starting with `error:` and containing each of `needles`, no
/// panic and no backtrace. Returns the line.
#[track_caller]
fn assert_one_line_error(o: &Output, needles: &[&str]) -> String {
    assert_eq!(o.status.code(), Some(2), "expected exit 2\n{}", text(o));
    let err = stderr(o);
    assert!(
        !err.contains("panicked") && !err.to_lowercase().contains("backtrace"),
        "a panic or a backtrace\n{}",
        text(o)
    );
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "expected exactly one line on stderr\n{}",
        text(o)
    );
    let line = lines[0];
    assert!(
        line.starts_with("error: ") && line.len() > "error: ".len() + 3,
        "the line must start with `error: ` and say something\n{}",
        text(o)
    );
    assert!(stdout(o).is_empty(), "nothing on stdout\n{}", text(o));
    for n in needles {
        assert!(
            line.contains(n),
            "the error should mention `{n}`\n{}",
            text(o)
        );
    }
    line.to_string()
}

/// Run example `name` with `args` in `sb` (with `RUST_BACKTRACE=1`, so a panic would show
/// its backtrace), assert a one-line bad-input error mentioning `needles`, and that the
/// sandbox is byte-for-byte unchanged. Returns the error line.
#[track_caller]
fn expect_bad_input(sb: &Sandbox, name: &str, args: &[&str], needles: &[&str]) -> String {
    let before = snapshot(sb.path());
    let o = sb
        .cmd(&example(name))
        .args(args)
        .env("RUST_BACKTRACE", "1")
        .output()
        .expect("spawn example");
    let line = assert_one_line_error(&o, needles);
    let after = snapshot(sb.path());
    let added: Vec<&PathBuf> = after.keys().filter(|k| !before.contains_key(*k)).collect();
    let changed: Vec<&PathBuf> = after
        .iter()
        .filter(|(k, v)| before.get(*k).is_some_and(|b| b != *v))
        .map(|(k, _)| k)
        .collect();
    assert!(
        added.is_empty() && changed.is_empty() && before.len() == after.len(),
        "`{name} {}` must write nothing; added {added:?}, changed {changed:?}\n{}",
        args.join(" "),
        text(&o)
    );
    line
}

/// Rows of `runs` output (the header dropped), split on whitespace.
fn runs_rows(o: &Output) -> Vec<Vec<String>> {
    let out = stdout(o);
    let mut lines = out.lines();
    let header = lines.next().unwrap_or_default();
    assert!(
        header.starts_with("RUN") && header.contains("STATUS"),
        "runs prints a header\n{}",
        text(o)
    );
    lines
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.split_whitespace().map(str::to_string).collect())
        .collect()
}

fn open(path: &Path) -> Datastore {
    Datastore::open(path.to_str().unwrap(), OpenMode::Existing).expect("open datastore")
}

/// Artifact name -> blob digest of the successful task `task`.
fn digests(ds: &Datastore, flow: &str, run: &str, task: &str) -> BTreeMap<String, Digest> {
    ds.successful_task(flow, run, task)
        .unwrap_or_else(|e| panic!("task {task} of {run}: {e}"))
        .manifest
        .expect("successful tasks have a manifest")
        .artifacts
        .into_iter()
        .map(|(k, b)| (k, b.digest))
        .collect()
}

/// Digest of `value` encoded the way a flow field is.
fn digest_of<T: serde::Serialize>(value: &T) -> Digest {
    Digest::of(&flowlib::encode_blob(value).expect("encodes"))
}

/// The per-task lines of plain progress output (`  <task> ok (..ms)`, `  <task> cached from …`): the task ids.
fn progress_tasks(o: &Output) -> Vec<String> {
    let mut tasks: Vec<String> = stderr(o)
        .lines()
        .filter(|l| l.starts_with("  "))
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            match (w.next(), w.next()) {
                (Some(task), Some("ok" | "cached")) => Some(task.to_string()),
                _ => None,
            }
        })
        .collect();
    tasks.sort();
    tasks
}

fn sorted(v: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = v.iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}

/// A sandbox with one `hello --name Ada` run; returns it with the run id.
fn hello_sandbox() -> (Sandbox, String) {
    let sb = Sandbox::new();
    let id = run_ok(&sb, "hello", &["run", "-q", "--name", "Ada"]);
    (sb, id)
}

/// [`hello_sandbox`] storing every artifact as an object, for tests that damage one.
fn hello_objects_sandbox() -> (Sandbox, String) {
    let sb = Sandbox::objects_only();
    let id = run_ok(&sb, "hello", &["run", "-q", "--name", "Ada"]);
    (sb, id)
}

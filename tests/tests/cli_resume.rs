//! `resume` from the command line: bad requests are one-line errors with a non-zero exit
//! that write nothing; a good one continues a failed run.

use std::path::Path;
use std::process::Output;

use flowlib_testkit::{fixture, flow_command, snapshot};

fn cmd(dir: &Path, args: &[&str]) -> Output {
    flow_command(&fixture("crashflow"), dir)
        .env("RUST_BACKTRACE", "1")
        .args(args)
        .output()
        .unwrap()
}

fn expect_refused(dir: &Path, args: &[&str], needle: &str) {
    let before = snapshot(dir);
    let out = cmd(dir, args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{args:?}: one line expected: {stderr}");
    assert!(
        lines[0].starts_with("error: ") && lines[0].contains(needle),
        "{args:?}: {stderr}"
    );
    assert!(
        !stderr.contains("panicked") && !stderr.contains("backtrace"),
        "{stderr}"
    );
    assert_eq!(snapshot(dir), before, "{args:?} wrote something");
}

#[test]
fn resume_refuses_bad_requests_with_one_line_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // No datastore at all, then an empty one: no earlier run.
    expect_refused(d, &["resume"], "no such directory");
    std::fs::create_dir(d.join("foreign")).unwrap();
    std::fs::write(d.join("foreign/notes.txt"), "mine").unwrap();
    expect_refused(
        d,
        &["resume", "--datastore", "foreign"],
        "not a flowlib datastore",
    );
    let out = cmd(d, &["run", "-q", "--n", "3", "--big-mib", "1"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for (args, needle) in [
        (
            vec!["resume", "--origin", "20200101T000000000Z-000000000000"],
            "no run `20200101T000000000Z-000000000000`",
        ),
        (vec!["resume", "--origin", "../x"], "invalid run id"),
        (vec!["resume", "--origin", "a/b"], "invalid run id"),
        (vec!["resume", "--origin", ".."], "invalid run id"),
        (vec!["resume", "nosuch"], "has no step `nosuch`"),
        (vec!["resume", "--n", "abc"], "--n"),
        (vec!["resume", "--max-workers", "0"], "--max-workers"),
    ] {
        expect_refused(d, &args, needle);
    }
}

#[test]
fn resume_from_the_command_line_reuses_and_reports() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let out = cmd(d, &["run", "-q", "--n", "3", "--big-mib", "1"]);
    assert!(out.status.success());
    let out = cmd(d, &["resume", "big", "--big-mib", "2"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("resuming") && stderr.contains("tasks reused"),
        "{stderr}"
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("big=2097152"));
    let out = cmd(d, &["runs"]);
    let listing = String::from_utf8_lossy(&out.stdout);
    assert!(listing.contains("resumed"), "{listing}");
    let out = cmd(d, &["dump", "latest"]);
    let dump = String::from_utf8_lossy(&out.stdout);
    assert!(
        dump.contains("from step big") && dump.contains("changed   big_mib: 1 -> 2"),
        "{dump}"
    );
}

/// Tasks of `run` that executed, per the crash fixture's log.
fn executed(dir: &Path, run: &str) -> Vec<String> {
    let log = std::fs::read_to_string(dir.join("log")).unwrap_or_default();
    let mut out: Vec<String> = log
        .lines()
        .filter_map(|l| {
            let mut it = l.split(' ');
            (it.next()? == run).then(|| it.next().map(str::to_string))?
        })
        .collect();
    out.sort();
    out
}

fn latest_run(dir: &Path) -> String {
    let ds = flowlib::Datastore::open(
        dir.join(".flowlib").to_str().unwrap(),
        flowlib::OpenMode::Existing,
    )
    .unwrap();
    ds.latest_run("Crash").unwrap().unwrap()
}

/// Start `resume -q big` held at `point` and SIGKILL it there.
fn kill_resume_at(dir: &Path, point: &str) {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    let mut child = flow_command(&fixture("crashflow"), dir)
        .env("CRASH_LOG", dir.join("log"))
        .env("FLOWLIB_TEST_HOLD", point)
        .args(["resume", "-q", "big"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let held = BufReader::new(stderr)
        .lines()
        .map_while(|l| l.ok())
        .any(|l| l.starts_with(&format!("FLOWLIB_HOLD {point}")));
    assert!(held, "the resume never reached {point}");
    // SAFETY: kill(2) on the pid of our own child.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGKILL);
    }
    let _ = child.wait();
}

fn logged(dir: &Path, args: &[&str]) -> Output {
    flow_command(&fixture("crashflow"), dir)
        .env("CRASH_LOG", dir.join("log"))
        .args(args)
        .output()
        .unwrap()
}

/// A resume killed right after it wrote its run record still has its reuse record: the
/// next resume reuses what the killed one reused instead of recomputing everything.
#[test]
fn a_resume_killed_after_its_run_record_keeps_its_reuse_record() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let out = logged(d, &["run", "-q", "--n", "3", "--big-mib", "1"]);
    assert!(out.status.success());
    kill_resume_at(d, "after-run-record");
    let killed = latest_run(d);
    assert!(
        executed(d, &killed).is_empty(),
        "nothing ran before the kill"
    );

    // Resuming the killed run reuses what it reused: only `big` and `end` run.
    let out = logged(d, &["resume", "-q"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let third = latest_run(d);
    assert_ne!(third, killed);
    assert_eq!(executed(d, &third), ["big", "end"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("big=1048576"));
}

/// A resume killed between its reuse record and its run record left no run: listing,
/// verifying and resuming carry on as if it had never started.
#[test]
fn a_resume_killed_before_its_run_record_leaves_no_run() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let out = logged(d, &["run", "-q", "--n", "3", "--big-mib", "1"]);
    assert!(out.status.success());
    let first = latest_run(d);
    kill_resume_at(d, "after-reuse-record");
    assert_eq!(latest_run(d), first, "the killed resume is no run");
    let out = logged(d, &["runs"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = logged(d, &["verify"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = logged(d, &["resume", "-q", "big"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(executed(d, &latest_run(d)), ["big", "end"]);
}

//! Crash safety: run a flow as a child process, SIGKILL it at many instants (at exact
//! points of the commit protocol, in the middle of a large artifact upload, and at timed
//! instants), resume it, and require that the result equals an uninterrupted run, that
//! every task committed before the kill is reused rather than run again, and that the
//! datastore verifies clean. Also: two processes running the same flow in the same
//! datastore at once do not interfere.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use flowlib::{AttemptStatus, BlobRef, Datastore, OpenMode};
use flowlib_testkit::{fixture, flow_command};

const BIG_MIB: &str = "40";

fn command(dir: &Path) -> Command {
    let mut c = flow_command(&fixture("crashflow"), dir);
    c.env("CRASH_LOG", dir.join("log"));
    c
}

fn open(dir: &Path) -> Datastore {
    Datastore::open(dir.join(".flowlib").to_str().unwrap(), OpenMode::Existing).unwrap()
}

/// The `end` task's artifacts of the latest run.
fn final_artifacts(ds: &Datastore, run: &str) -> BTreeMap<String, BlobRef> {
    let a = ds.successful_task("Crash", run, "end").unwrap();
    a.manifest.unwrap().artifacts
}

/// Tasks of `run` that executed (per the crash log).
fn executed(dir: &Path, run: &str) -> BTreeSet<String> {
    let log = std::fs::read_to_string(dir.join("log")).unwrap_or_default();
    log.lines()
        .filter_map(|l| {
            let mut it = l.split(' ');
            (it.next()? == run).then(|| it.next().map(str::to_string))?
        })
        .collect()
}

/// Wait for `FLOWLIB_HOLD` on the child's stderr; returns false if the child exited first.
fn wait_for_hold(child: &mut Child, timeout: Duration) -> bool {
    use std::io::{BufRead, BufReader};
    let stderr = child.stderr.take().expect("piped stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(|l| l.ok()) {
            if line.starts_with("FLOWLIB_HOLD ") {
                let _ = tx.send(());
            }
        }
    });
    rx.recv_timeout(timeout).is_ok()
}

fn sigkill(child: &mut Child) {
    // SAFETY: kill(2) on the pid of our own child.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGKILL);
    }
    let status = child.wait().unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert!(
        status.signal() == Some(libc::SIGKILL) || status.success(),
        "child ended with {status:?}"
    );
}

enum Kill {
    /// Stop at a hold point, then SIGKILL.
    Hold(&'static str),
    /// SIGKILL after this fraction of an uninterrupted run's wall time.
    After(f64),
}

struct Reference {
    artifacts: BTreeMap<String, BlobRef>,
    wall: Duration,
}

fn reference() -> Reference {
    let dir = tempfile::tempdir().unwrap();
    let t0 = Instant::now();
    let out = command(dir.path())
        .args(["run", "-q", "--big-mib", BIG_MIB])
        .output()
        .unwrap();
    let wall = t0.elapsed();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ds = open(dir.path());
    let run = ds.latest_run("Crash").unwrap().unwrap();
    Reference {
        artifacts: final_artifacts(&ds, &run),
        wall,
    }
}

/// One kill scenario; returns a description of what was checked.
fn scenario(kill: &Kill, reference: &Reference) -> String {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = command(dir.path());
    cmd.args(["run", "-q", "--big-mib", BIG_MIB])
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let label = match kill {
        Kill::Hold(p) => {
            cmd.env("FLOWLIB_TEST_HOLD", p);
            format!("hold {p}")
        }
        Kill::After(f) => format!("after {:.0}% of a run", f * 100.0),
    };
    let mut child = cmd.spawn().unwrap();
    match kill {
        Kill::Hold(_) => {
            assert!(
                wait_for_hold(&mut child, Duration::from_secs(60)),
                "{label}: never reached the hold point"
            );
        }
        Kill::After(f) => std::thread::sleep(reference.wall.mul_f64(*f)),
    }
    sigkill(&mut child);

    // What the killed run had committed.
    let Some(killed) = Datastore::open(
        dir.path().join(".flowlib").to_str().unwrap(),
        OpenMode::Existing,
    )
    .ok()
    .and_then(|ds| ds.latest_run("Crash").unwrap()) else {
        // Killed before the run record existed: there is nothing to resume, and saying so
        // is a clean one-line error; a new run then gives the reference result.
        let out = command(dir.path()).args(["resume", "-q"]).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{label}: {err}");
        assert_eq!(err.lines().count(), 1, "{label}: {err}");
        let out = command(dir.path())
            .args(["run", "-q", "--big-mib", BIG_MIB])
            .output()
            .unwrap();
        assert!(out.status.success(), "{label}");
        let ds = open(dir.path());
        let run = ds.latest_run("Crash").unwrap().unwrap();
        assert_eq!(final_artifacts(&ds, &run), reference.artifacts, "{label}");
        return format!(
            "{label}: killed before the run record was written; resume refused cleanly"
        );
    };
    let ds = open(dir.path());
    let before: BTreeSet<String> = ds
        .task_attempts("Crash", &killed)
        .unwrap()
        .into_iter()
        .filter(|a| a.status == AttemptStatus::Ok)
        .map(|a| a.task_id())
        .collect();
    let info = ds.run_info("Crash", &killed).unwrap();
    if info.end.is_none() {
        assert_eq!(
            info.is_alive(),
            Some(false),
            "{label}: a killed run is not reported alive"
        );
    }

    // Resume and compare with the uninterrupted run.
    let out = command(dir.path()).args(["resume", "-q"]).output().unwrap();
    assert!(
        out.status.success(),
        "{label}: resume failed\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ds = open(dir.path());
    let resumed = ds.latest_run("Crash").unwrap().unwrap();
    assert_ne!(resumed, killed);
    assert_eq!(
        final_artifacts(&ds, &resumed),
        reference.artifacts,
        "{label}: results differ from an uninterrupted run"
    );

    // Every task committed before the kill is reused by reference, never run again.
    let ran_again = executed(dir.path(), &resumed);
    let attempts = ds.task_attempts("Crash", &resumed).unwrap();
    for task in &before {
        assert!(
            !ran_again.contains(task),
            "{label}: {task} was committed before the kill but ran again"
        );
        let a = attempts
            .iter()
            .find(|a| &a.task_id() == task)
            .unwrap_or_else(|| panic!("{label}: {task} missing from the resumed run"));
        assert!(
            a.reused && a.source.run == killed,
            "{label}: {task} not reused from {killed}"
        );
    }
    // And nothing else was reused.
    let reused: BTreeSet<String> = attempts
        .iter()
        .filter(|a| a.reused)
        .map(|a| a.task_id())
        .collect();
    assert_eq!(reused, before, "{label}");

    // A checkpointed step killed mid-loop continues from its last checkpoint.
    let log = std::fs::read_to_string(dir.path().join("log")).unwrap();
    let train_in_killed = log
        .lines()
        .any(|l| l.starts_with(&format!("{killed} train ")));
    if train_in_killed && !before.contains("train") {
        let resumed_train = log
            .lines()
            .find(|l| l.starts_with(&format!("{resumed} train ")))
            .expect("train runs again");
        if matches!(kill, Kill::Hold("checkpoint-pointer@train")) {
            assert!(
                resumed_train.ends_with("from=0"),
                "{label}: the unpublished checkpoint is not used: {resumed_train}"
            );
        }
        if matches!(kill, Kill::Hold("before-store@train")) {
            assert!(
                resumed_train.ends_with("from=10"),
                "{label}: {resumed_train}"
            );
        }
    }

    // Nothing corrupt is believed: every committed blob verifies.
    let problems = flowlib::verify(&ds, Some("Crash"), None)
        .unwrap()
        .problems
        .len();
    assert_eq!(problems, 0, "{label}: verify found problems");
    format!(
        "{label}: {} tasks committed before the kill, all reused",
        before.len()
    )
}

#[test]
fn sigkill_at_any_instant_then_resume_loses_nothing() {
    let reference = reference();
    let mut kills: Vec<Kill> = [
        "before-store@start",
        "before-commit@start",
        "after-commit@start",
        "before-store@work/3",
        "before-commit@work/3",
        "after-commit@work/5",
        "before-store@gather",
        "before-commit@gather",
        "checkpoint-pointer@train",
        "before-store@train",
        "after-commit@train",
        "after-hash@big",
        "mid-blob@big",
        "before-commit@big",
        "after-commit@big",
        "before-commit@end",
        "before-run-end",
    ]
    .into_iter()
    .map(Kill::Hold)
    .collect();
    kills.extend(
        [0.02, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
            .into_iter()
            .map(Kill::After),
    );
    assert!(kills.len() >= 20);

    // A few scenarios at a time: each is one child process with two workers.
    let mut report = Vec::new();
    for chunk in kills.chunks(3) {
        let results: Vec<String> = std::thread::scope(|s| {
            let handles: Vec<_> = chunk
                .iter()
                .map(|k| s.spawn(|| scenario(k, &reference)))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
                .collect()
        });
        report.extend(results);
    }
    for line in &report {
        eprintln!("{line}");
    }
}

#[test]
fn two_processes_running_one_flow_in_one_datastore_do_not_interfere() {
    let dir = tempfile::tempdir().unwrap();
    let children: Vec<Child> = ["5", "6"]
        .iter()
        .map(|n| {
            command(dir.path())
                .args(["run", "-q", "--big-mib", "8", "--n", n])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let ds = open(dir.path());
    let runs = ds.run_ids("Crash").unwrap();
    assert_eq!(runs.len(), 2);
    let mut widths = Vec::new();
    for run in &runs {
        let n: u32 = ds.artifact("Crash", run, "end", "n").unwrap();
        let items: Vec<u32> = ds.artifact("Crash", run, "end", "items").unwrap();
        assert_eq!(items, (0..n).collect::<Vec<_>>());
        let work = ds
            .task_attempts("Crash", run)
            .unwrap()
            .into_iter()
            .filter(|a| a.step == "work" && a.status == AttemptStatus::Ok)
            .count();
        assert_eq!(work, n as usize);
        widths.push(n);
    }
    widths.sort();
    assert_eq!(widths, [5, 6]);
    assert_eq!(flowlib::verify(&ds, None, None).unwrap().problems.len(), 0);
}

/// Exclusivity across processes: a run that is alive (held before its end record) is not
/// resumed, and while one resume of an origin is alive (held after its run record) a
/// second resume of that origin refuses; once the holder is killed, a resume proceeds.
#[test]
fn a_live_run_or_resume_is_never_resumed_twice_across_processes() {
    let dir = tempfile::tempdir().unwrap();
    let spawn_held = |args: &[&str], point: &str| {
        let mut child = command(dir.path())
            .args(args)
            .env("FLOWLIB_TEST_HOLD", point)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        assert!(
            wait_for_hold(&mut child, Duration::from_secs(60)),
            "never reached {point}"
        );
        child
    };
    let refused = |args: &[&str], want: &[&str]| {
        let out = command(dir.path()).args(args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?} was not refused: {err}"
        );
        assert_eq!(err.lines().count(), 1, "{err}");
        for w in want {
            assert!(err.contains(w), "{err} does not say {w}");
        }
    };

    let mut origin = spawn_held(&["run", "-q", "--big-mib", "8"], "before-run-end");
    let origin_id = open(dir.path()).latest_run("Crash").unwrap().unwrap();
    refused(
        &["resume", "-q"],
        &[&format!("run {origin_id} is still running"), "heartbeat"],
    );
    sigkill(&mut origin);

    let resume = ["resume", "-q", "--origin", &origin_id];
    let mut first = spawn_held(&resume, "after-run-record");
    let held = open(dir.path()).latest_run("Crash").unwrap().unwrap();
    assert_ne!(held, origin_id);
    refused(
        &resume,
        &[&origin_id, &format!("run {held} is resuming it")],
    );
    sigkill(&mut first);

    let out = command(dir.path()).args(resume).output().unwrap();
    assert!(
        out.status.success(),
        "a resume after the other one died: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(open(dir.path()).run_ids("Crash").unwrap().len(), 3);
}

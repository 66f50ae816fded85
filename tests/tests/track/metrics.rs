//! Metrics logged by steps: stored per attempt on every executor, summarized in the commit
//! record, and kept when the task process is killed mid-step.

use std::time::{Duration, Instant};

use flowlib::{read_metrics, read_run_metrics, AttemptStatus, TaskRef};
use flowlib_testkit::{fixture, Sandbox};

use super::track_ok;

fn check_run(sb: &Sandbox, run: &str, points: usize) {
    let ds = sb.open();
    let attempts = ds.task_attempts("Track", run).unwrap();
    let work: Vec<_> = attempts.iter().filter(|a| a.step == "work").collect();
    assert_eq!(work.len(), 2);
    for a in &work {
        let seed = a.index.0[0];
        let s = &a.metrics["train_loss"];
        assert_eq!(s.count, points as u64);
        assert_eq!(s.last_step, Some(points as u64 - 1));
        assert_eq!(s.max, 0.01 * 100.0);
        let val = &a.metrics["val_loss"];
        assert_eq!((val.count, val.last), (1, 0.1 + f64::from(seed) / 100.0));
        let p = read_metrics(&ds, "Track", &a.source).unwrap();
        assert_eq!(p.len(), points + 1);
        assert!(p[..points]
            .iter()
            .enumerate()
            .all(|(i, p)| p.name == "train_loss" && p.step == Some(i as u64)));
        assert_eq!(p[points].name, "val_loss");
        assert!(p.iter().all(|p| p.at_ms > 1_700_000_000_000));
    }
    let gather = attempts.iter().find(|a| a.step == "gather").unwrap();
    assert_eq!(gather.metrics["best_loss"].last, 0.1);
    let all = read_run_metrics(&ds, "Track", run).unwrap();
    let names: Vec<String> = all.iter().map(|(t, _)| t.task_id()).collect();
    assert_eq!(names, ["gather", "work/0", "work/1"]);
}

#[test]
fn metrics_are_stored_per_attempt_on_threads_and_processes() {
    let sb = Sandbox::new();
    let threads = track_ok(&sb, &["run", "--points", "30000"]);
    check_run(&sb, &threads, 30000);
    let processes = track_ok(&sb, &["run", "--points", "500", "--with", "processes"]);
    check_run(&sb, &processes, 500);
}

/// SIGKILL the task process of `work/0` after it logged: its points are in the store.
#[test]
fn points_logged_before_a_kill_are_kept() {
    let sb = Sandbox::new();
    let pid_file = sb.path().join("pid");
    let mut driver = sb
        .cmd(&fixture("trackflow"))
        .args(["run", "--points", "1000", "--with", "processes", "-q"])
        .env("TRACK_PID_FILE", &pid_file)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    let pid: i32 = loop {
        if let Some(p) = std::fs::read_to_string(&pid_file)
            .ok()
            .and_then(|s| s.trim().parse().ok())
        {
            break p;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(120),
            "work/0 never started"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let ds = sb.open();
    let run = ds.latest_run("Track").unwrap().unwrap();
    let task = TaskRef::new(&run, "work", &[0], 0);
    // Flushed within half a second of logging, while the step still runs.
    let logged = loop {
        let p = read_metrics(&ds, "Track", &task).unwrap();
        if p.len() == 1001 {
            break p;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(120),
            "only {} points",
            p.len()
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    // SAFETY: kill(2) on the task process our child started.
    unsafe {
        libc::kill(pid, libc::SIGKILL);
    }
    // The run may retry work/0 (a killed process can count as a platform failure).
    driver.wait().unwrap();
    let attempts = ds.task_attempts("Track", &run).unwrap();
    let w0 = attempts
        .iter()
        .find(|a| a.task_id() == "work/0" && a.source.attempt == 0)
        .expect("work/0 attempt 0 is recorded");
    assert!(
        matches!(w0.status, AttemptStatus::Lost | AttemptStatus::Failed),
        "{:?}",
        w0.status
    );
    let after = read_metrics(&ds, "Track", &task).unwrap();
    assert_eq!(
        after, logged,
        "the points logged before the kill are intact"
    );
    assert_eq!(after[999].step, Some(999));
    assert_eq!(after[1000].name, "val_loss");
    let report = flowlib::verify(&ds, None, None).unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
}

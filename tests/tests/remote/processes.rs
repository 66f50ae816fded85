//! `--with processes`: one child process per task through `step --spec`.

use super::*;

#[test]
fn every_task_runs_in_a_child_process_and_its_output_is_stored() {
    let sb = Sandbox::new();
    let o = remote(&sb, &["run", "--with", "processes", "--n", "3"]);
    assert_exit(&o, 0);
    let pids = task_pids(&sb);
    let driver = std::process::id();
    let mut seen = std::collections::BTreeSet::new();
    for (task, p) in &pids {
        assert_eq!(p.len(), 1, "{task} ran once: {pids:?}");
        assert_ne!(p[0], driver);
        assert!(
            seen.insert(p[0]),
            "{task} has a process of its own: {pids:?}"
        );
    }
    assert_eq!(
        pids.len(),
        3 + 1,
        "start and the three work tasks: {pids:?}"
    );
    // Each line of a task is echoed to the driver's terminal with the task in front.
    assert!(
        stdout(&o).contains("[work/2] work 2 says hello on stdout"),
        "{}",
        text(&o)
    );
    // ... and stored with the attempt: `logs` prints it, stdout and stderr apart.
    let l = remote(&sb, &["logs", "latest/work/2"]);
    assert_exit(&l, 0);
    assert_eq!(
        stdout(&l),
        "work 2 says hello on stdout\nwork 2 logged through ctx\n"
    );
    let l = remote(&sb, &["logs", "latest/work/2", "--stderr"]);
    assert_eq!(stdout(&l), "work 2 says hello on stderr\n", "{}", text(&l));
    // The manifest points at them.
    let info = latest(&sb);
    let ds = Datastore::open(sb.datastore().to_str().unwrap(), OpenMode::Existing).unwrap();
    let attempts = ds.task_attempts("Remote", &info.record.run_id).unwrap();
    let work2 = attempts
        .iter()
        .find(|a| a.task_id() == "work/2")
        .expect("work/2 attempt");
    let logs = work2.manifest.as_ref().and_then(|m| m.logs.clone());
    assert!(
        logs.as_deref()
            .is_some_and(|l| l.contains("/logs/work/2@0/")),
        "{logs:?}"
    );
    // The code package is stored once, by digest, and the run record names it.
    let digest = info.record.code.exe_digest.expect("exe digest");
    let pkg = sb
        .datastore()
        .join("packages/sha256")
        .join(&digest.hex()[..2])
        .join(&digest.hex()[2..]);
    assert_eq!(
        std::fs::metadata(&pkg).expect("package").len(),
        std::fs::metadata(fixture("remoteflow")).unwrap().len()
    );
    assert_eq!(latest(&sb).record.run_id, info.record.run_id);
    // The same result as on threads.
    let t = remote(&sb, &["run", "--n", "3"]);
    assert_exit(&t, 0);
    let a = remote(&sb, &["dump", "latest/end", "--format", "json"]);
    assert!(stdout(&a).contains("\"total\""), "{}", text(&a));
}

#[test]
fn a_segfault_fails_only_that_task_with_the_signal_named_and_resume_finishes() {
    let sb = Sandbox::new();
    let o = remote(&sb, &["run", "--with", "processes", "--mode", "segv"]);
    assert_exit(&o, 1);
    let err = stderr(&o);
    assert!(
        err.contains(
            "work/1: the task process was killed by signal 11 (SIGSEGV: segmentation fault)"
        ),
        "{}",
        text(&o)
    );
    // Its last output is in the failure summary, stdout and stderr marked.
    assert!(err.contains("| stdout: about to crash"), "{}", text(&o));
    assert!(
        err.contains("4 succeeded"),
        "the other tasks finished: {}",
        text(&o)
    );
    // The attempt is recorded as lost, with the reason, so a late writer cannot commit it.
    let lost = attempts(&sb, "work/1");
    assert!(!lost.is_empty());
    for a in &lost {
        assert_eq!(a.status, flowlib::AttemptStatus::Lost, "{a:?}");
        assert!(
            a.error.as_deref().unwrap_or("").contains("SIGSEGV"),
            "{a:?}"
        );
    }
    // Resuming with the bug fixed (`--mode ok`) re-runs `work`, which reads `mode`, and
    // reuses `start`, which does not.
    let first = task_pids(&sb);
    let r = remote(&sb, &["resume", "--with", "processes", "--mode", "ok"]);
    assert_exit(&r, 0);
    let after = task_pids(&sb);
    assert_eq!(
        first.get("start@0"),
        after.get("start@0"),
        "start was reused"
    );
    assert!(stderr(&r).contains("1 tasks reused"), "{}", text(&r));
}

#[test]
fn out_of_memory_is_reported_as_such() {
    let sb = Sandbox::new();
    let o = remote(
        &sb,
        &["run", "--with", "processes", "--mode", "oom", "--n", "2"],
    );
    assert_exit(&o, 1);
    assert!(
        stderr(&o).contains(
            "work/1: out of memory: the task went over its memory limit of 128MiB (#[resources(memory)]) and was killed"
        ),
        "{}",
        text(&o)
    );
}

#[test]
fn a_timed_out_task_process_is_killed_not_abandoned() {
    let sb = Sandbox::new();
    let o = remote(
        &sb,
        &[
            "run",
            "--with",
            "processes",
            "--mode",
            "sleep",
            "--sleep-ms",
            "60000",
            "--n",
            "2",
        ],
    );
    assert_exit(&o, 1);
    assert!(
        stderr(&o).contains("work/1: timed out after 3s"),
        "{}",
        text(&o)
    );
    let pids = task_pids(&sb);
    for attempt in ["work/1@0", "work/1@1"] {
        let pid = pids[attempt][0];
        assert!(
            !alive(pid),
            "{attempt} (pid {pid}) was killed at its timeout"
        );
    }
}

#[test]
fn an_exit_without_a_result_keeps_the_last_lines() {
    let sb = Sandbox::new();
    let o = remote(
        &sb,
        &["run", "--with", "processes", "--mode", "exit", "--n", "2"],
    );
    assert_exit(&o, 1);
    let err = stderr(&o);
    assert!(
        err.contains("work/1: the task process exited with code 3"),
        "{}",
        text(&o)
    );
    assert!(
        err.contains("stdout: last words before exit(3)"),
        "{}",
        text(&o)
    );
    let l = remote(&sb, &["logs", "latest/work/1", "--attempt", "1"]);
    assert_exit(&l, 0);
    assert!(
        stdout(&l).ends_with("last words before exit(3)\n"),
        "{}",
        text(&l)
    );
}

#[test]
fn a_failing_task_is_retried_in_a_new_process() {
    let sb = Sandbox::new();
    let o = remote(
        &sb,
        &[
            "run",
            "--with",
            "processes",
            "--mode",
            "fail-once",
            "--n",
            "2",
        ],
    );
    assert_exit(&o, 0);
    let pids = task_pids(&sb);
    assert_ne!(pids["work/1@0"], pids["work/1@1"], "{pids:?}");
    assert!(
        stderr(&o).contains("item 1 fails on its first attempt"),
        "{}",
        text(&o)
    );
}

#[test]
fn ctrl_c_kills_every_child_and_the_run_resumes() {
    let sb = Sandbox::new();
    let child = spawn_remote(
        &sb,
        &[
            "run",
            "--with",
            "processes",
            "--mode",
            "sleep",
            "--sleep-ms",
            "2500",
            "--n",
            "2",
        ],
    );
    // Wait until work/1 runs, then interrupt the driver as a terminal would.
    wait_for_task(&sb, "work/1@0");
    let sleeper = task_pids(&sb)["work/1@0"][0];
    // SAFETY: kill with a valid pid and signal.
    unsafe {
        assert_eq!(libc::kill(child.id() as libc::pid_t, libc::SIGINT), 0);
    }
    let o = child.wait_with_output().unwrap();
    assert_exit(&o, 1);
    assert!(stderr(&o).contains("cancelled"), "{}", text(&o));
    assert!(!alive(sleeper), "the task process was killed");
    assert_eq!(latest(&sb).status(), flowlib::RunStatus::Cancelled);
    let r = remote(&sb, &["resume", "--with", "processes", "--mode", "ok"]);
    assert_exit(&r, 0);
    assert!(stderr(&r).contains("tasks reused"), "{}", text(&r));
}

#[test]
fn bad_executor_requests_are_one_line_errors() {
    let sb = Sandbox::new();
    let o = remote(
        &sb,
        &["--datastore", "memory://x", "run", "--with", "processes"],
    );
    assert_exit(&o, 2);
    assert!(
        stderr(&o).contains("exists only in this process"),
        "{}",
        text(&o)
    );
    assert_eq!(stderr(&o).lines().count(), 1, "{}", text(&o));
    for (args, needle) in [
        (
            vec!["run", "--with", "gpu-farm"],
            "unknown executor `gpu-farm`",
        ),
        (
            vec!["run", "--with", "processes:nosuch"],
            "has no step `nosuch`",
        ),
        (
            vec!["run", "--with", "processes:work", "--with", "threads:work"],
            "two executors",
        ),
    ] {
        let o = remote(&sb, &args);
        assert_exit(&o, 2);
        assert!(stderr(&o).contains(needle), "{args:?}: {}", text(&o));
        assert_eq!(stderr(&o).lines().count(), 1, "{}", text(&o));
    }
    let s = remote(&sb, &["show", "--with", "processes:work"]);
    assert_exit(&s, 0);
    let out = stdout(&s);
    assert!(
        out.contains("where steps run (--with processes:work)"),
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.trim().starts_with("work   processes")),
        "{out}"
    );
    assert!(out.lines().any(|l| l.trim() == "start  threads"), "{out}");
}

#[test]
fn cancel_from_another_process_stops_the_run() {
    let sb = Sandbox::new();
    let child = spawn_remote(
        &sb,
        &[
            "run",
            "--with",
            "processes",
            "--mode",
            "sleep",
            "--sleep-ms",
            "2800",
            "--n",
            "2",
        ],
    );
    wait_for_task(&sb, "work/1@0");
    let t0 = std::time::Instant::now();
    let c = remote(&sb, &["cancel", "latest"]);
    assert_exit(&c, 0);
    assert!(stdout(&c).contains("requested"), "{}", text(&c));
    assert!(
        !stdout(&c).contains("Slurm"),
        "a run that never used Slurm is not looked for there: {}",
        text(&c)
    );
    let o = child.wait_with_output().unwrap();
    assert_exit(&o, 1);
    assert_eq!(latest(&sb).status(), flowlib::RunStatus::Cancelled);
    assert!(
        t0.elapsed().as_secs() < 20,
        "the driver saw the request within seconds"
    );
    let r = remote(&sb, &["runs"]);
    assert!(stdout(&r).contains("cancelled"), "{}", text(&r));
}

#[test]
fn the_cluster_example_runs_unchanged_on_every_local_executor() {
    let sb = Sandbox::new();
    // Threads last: `logs` then reads what `ctx.log` stored on the thread executor.
    for with in [Some("processes"), Some("processes:simulate"), None] {
        let mut args = vec!["run", "--chunks", "3", "--points", "1000"];
        if let Some(w) = with {
            args.extend(["--with", w]);
        }
        let o = sb.run("cluster", &args);
        assert_exit(&o, 0);
        assert!(stdout(&o).contains("π ≈"), "{with:?}: {}", text(&o));
    }
    let l = sb.run("cluster", &["logs", "latest/simulate/2"]);
    assert!(
        stdout(&l).starts_with("chunk 2 on this machine: "),
        "{}",
        text(&l)
    );
}

//! `--with slurm` against a real Slurm (single node, from Debian packages; `scripts/slurm.sh`
//! starts it, `.ci/run` does so through the README's test command). Outside CI these tests
//! skip, loudly, when `sbatch` is not on PATH; in CI (`FLOWLIB_TEST_SLURM=1`, set by
//! `scripts/test-all.sh` after it started Slurm) a missing Slurm fails them.
//!
//! The node has 2 CPUs, so Slurm runs about two tasks a second: the fixtures stay small.

use std::process::Command;
use std::time::{Duration, Instant};

use super::*;

/// Whether Slurm is usable here; panics in CI when it is not.
fn slurm() -> bool {
    let ok = Command::new("sinfo")
        .args(["-h", "-o", "%T"])
        .output()
        .is_ok_and(|o| o.status.success() && !o.stdout.is_empty());
    if !ok {
        assert!(
            std::env::var_os("FLOWLIB_TEST_SLURM").is_none(),
            "FLOWLIB_TEST_SLURM is set but Slurm is not usable (sinfo failed): run `scripts/slurm.sh start`"
        );
        eprintln!(
            "\n*** SKIPPED: no usable Slurm here (sbatch/sinfo missing or no node); `scripts/slurm.sh install && scripts/slurm.sh start` to run the Slurm tests ***\n"
        );
    }
    ok
}

fn run_slurm(sb: &Sandbox, args: &[&str]) -> Output {
    remote(sb, args)
}

/// The ids of the jobs the sandbox's runs submitted, from their Slurm output files
/// (`<step>-<job>.out`, `<step>-<array>_<index>.out`): (step, job id, array index).
fn submitted(sb: &Sandbox) -> Vec<(String, u64, Option<u32>)> {
    let mut out = Vec::new();
    let Ok(runs) = std::fs::read_dir(sb.path().join("slurm-out")) else {
        return out;
    };
    for run in runs.flatten() {
        for f in std::fs::read_dir(run.path()).unwrap().flatten() {
            let name = f.file_name().to_string_lossy().into_owned();
            let Some(stem) = name.strip_suffix(".out") else {
                continue;
            };
            let Some((step, id)) = stem.rsplit_once('-') else {
                continue;
            };
            let (job, index) = match id.split_once('_') {
                Some((j, i)) => (j.parse().unwrap(), Some(i.parse().unwrap())),
                None => (id.parse().unwrap(), None),
            };
            out.push((step.to_string(), job, index));
        }
    }
    out.sort();
    out
}

fn scontrol_lines(job: u64) -> Vec<String> {
    let o = Command::new("scontrol")
        .args(["-o", "show", "job", &job.to_string()])
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn slurm_linear_and_foreach_flow_runs_every_step_on_slurm() {
    if !slurm() {
        return;
    }
    let sb = Sandbox::new();
    let o = run_slurm(&sb, &["run", "--with", "slurm", "--n", "3"]);
    assert_exit(&o, 0);
    let jobs = submitted(&sb);
    let steps: Vec<&str> = jobs.iter().map(|(s, _, _)| s.as_str()).collect();
    assert_eq!(
        steps,
        ["end", "join", "start", "work", "work", "work"],
        "{jobs:?}"
    );
    // The foreach went as one array of three; the others as plain jobs.
    let arrays: std::collections::BTreeSet<u64> = jobs
        .iter()
        .filter(|(s, _, _)| s == "work")
        .map(|(_, j, _)| *j)
        .collect();
    assert_eq!(arrays.len(), 1, "{jobs:?}");
    assert!(jobs
        .iter()
        .filter(|(s, _, _)| s != "work")
        .all(|(_, _, i)| i.is_none()));
    let lines = scontrol_lines(*arrays.iter().next().unwrap());
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert!(
        lines.iter().all(|l| l.contains("JobState=COMPLETED")),
        "{lines:?}"
    );
    // No job script holds a datastore value: the environment goes by name.
    let script = Command::new("scontrol")
        .args([
            "write",
            "batch_script",
            &arrays.iter().next().unwrap().to_string(),
            "-",
        ])
        .output()
        .unwrap();
    let script = String::from_utf8_lossy(&script.stdout);
    assert!(script.contains("task-exec --spec"), "{script}");
    assert!(!script.contains("FLOWLIB_DATASTORE="), "{script}");
    // Output captured on Slurm is stored like any other.
    let l = run_slurm(&sb, &["logs", "latest/work/1"]);
    assert_eq!(
        stdout(&l),
        "work 1 says hello on stdout\nwork 1 logged through ctx\n",
        "{}",
        text(&l)
    );
    let d = run_slurm(&sb, &["dump", "latest/end", "total", "--format", "json"]);
    assert!(stdout(&d).contains('5'), "0 + 1 + 4: {}", text(&d));
}

#[test]
fn slurm_foreach_of_50_is_one_throttled_job_array() {
    if !slurm() {
        return;
    }
    let sb = Sandbox::new();
    let child = spawn_remote(&sb, &["run", "--with", "slurm:work", "--n", "50"]);
    // Watch the queue while it runs: never more than 2 tasks of the array at once
    // (`#[slurm(max_parallel = 2)]`), the others held by the array throttle.
    let t0 = Instant::now();
    let mut max_running = 0;
    let mut throttled = false;
    let mut array_seen = false;
    while t0.elapsed() < Duration::from_secs(240) {
        let jobs = submitted(&sb);
        if let Some((_, job, _)) = jobs.iter().find(|(s, _, _)| s == "work") {
            let q = Command::new("squeue")
                .args(["-h", "-r", "-j", &job.to_string(), "-o", "%i|%T|%r"])
                .output()
                .unwrap();
            let q = String::from_utf8_lossy(&q.stdout).into_owned();
            array_seen = true;
            let running = q.lines().filter(|l| l.contains("|RUNNING|")).count();
            max_running = max_running.max(running);
            throttled |= q.contains("JobArrayTaskLimit");
            if q.trim().is_empty() {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let o = child.wait_with_output().unwrap();
    assert_exit(&o, 0);
    assert!(array_seen);
    assert!(
        max_running <= 2,
        "at most 2 running at once, saw {max_running}"
    );
    assert!(
        throttled,
        "the array throttle held tasks back (Reason=JobArrayTaskLimit)"
    );
    let work: Vec<_> = submitted(&sb)
        .into_iter()
        .filter(|(s, _, _)| s == "work")
        .collect();
    assert_eq!(work.len(), 50);
    assert!(
        work.iter().all(|(_, j, _)| *j == work[0].1),
        "one array: {work:?}"
    );
    assert_eq!(scontrol_lines(work[0].1).len(), 50);
}

#[test]
fn slurm_out_of_memory_and_timeout_are_reported_for_what_they_are() {
    if !slurm() {
        return;
    }
    let sb = Sandbox::new();
    let o = run_slurm(
        &sb,
        &["run", "--with", "slurm:work", "--mode", "oom", "--n", "2"],
    );
    assert_exit(&o, 1);
    assert!(
        stderr(&o)
            .contains("work/1: out of memory: Slurm killed the job at its memory limit of 128MiB"),
        "{}",
        text(&o)
    );
    let sb = Sandbox::new();
    let o = run_slurm(
        &sb,
        &[
            "run",
            "--with",
            "slurm:work",
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
    // The timed-out jobs were cancelled on Slurm, not left running.
    let jobs = submitted(&sb);
    for (_, job, index) in jobs.iter().filter(|(s, _, i)| s == "work" && *i == Some(1)) {
        let lines = scontrol_lines(*job);
        let mine = lines
            .iter()
            .find(|l| l.contains(&format!("ArrayTaskId={} ", index.unwrap())))
            .unwrap_or_else(|| panic!("{lines:?}"));
        assert!(mine.contains("JobState=CANCELLED"), "{mine}");
    }
}

#[test]
fn slurm_failing_task_is_retried_by_flowlib_with_attempts_recorded() {
    if !slurm() {
        return;
    }
    let sb = Sandbox::new();
    let o = run_slurm(
        &sb,
        &[
            "run",
            "--with",
            "slurm:work",
            "--mode",
            "fail-once",
            "--n",
            "2",
        ],
    );
    assert_exit(&o, 0);
    let statuses: Vec<_> = attempts(&sb, "work/1")
        .iter()
        .map(|a| (a.source.attempt, a.status))
        .collect();
    assert_eq!(
        statuses,
        [
            (0, flowlib::AttemptStatus::Failed),
            (1, flowlib::AttemptStatus::Ok)
        ]
    );
    // Two Slurm jobs for work/1: the array task of attempt 0, a plain job for the retry.
    let work = submitted(&sb)
        .into_iter()
        .filter(|(s, _, _)| s == "work")
        .count();
    assert_eq!(work, 3, "two array tasks and one retry job");
}

#[test]
fn slurm_driver_killed_mid_run_then_resume_reuses_what_committed_on_slurm() {
    if !slurm() {
        return;
    }
    let sb = Sandbox::new();
    let mut child = spawn_remote(&sb, &["run", "--with", "slurm:work", "--n", "6"]);
    let t0 = Instant::now();
    // Kill -9 the driver once a couple of work tasks have run on Slurm.
    while task_pids(&sb)
        .keys()
        .filter(|k| k.starts_with("work/"))
        .count()
        < 2
    {
        assert!(t0.elapsed() < Duration::from_secs(120), "work never ran");
        std::thread::sleep(Duration::from_millis(100));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    // The jobs already on Slurm run to their end and commit without the driver.
    let t1 = Instant::now();
    loop {
        let alive = submitted(&sb).iter().any(|(_, job, _)| {
            let q = Command::new("squeue")
                .args(["-h", "-r", "-j", &job.to_string(), "-o", "%T"])
                .output()
                .unwrap();
            !String::from_utf8_lossy(&q.stdout).trim().is_empty()
        });
        if !alive {
            break;
        }
        assert!(
            t1.elapsed() < Duration::from_secs(120),
            "jobs never finished"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    let ran_before: Vec<String> = task_pids(&sb)
        .keys()
        .filter(|k| k.starts_with("work/"))
        .cloned()
        .collect();
    let r = run_slurm(&sb, &["resume", "--with", "slurm:work"]);
    assert_exit(&r, 0);
    let reused = reused_count(&r);
    // start, plus every work task that ran before the kill (they all committed on Slurm).
    assert_eq!(reused, 1 + ran_before.len(), "{ran_before:?}\n{}", text(&r));
    let after = task_pids(&sb);
    for t in &ran_before {
        assert_eq!(after[t].len(), 1, "{t} ran once, on Slurm, before the kill");
    }
}

#[test]
fn slurm_scancel_from_outside_is_reported_as_cancelled() {
    if !slurm() {
        return;
    }
    let sb = Sandbox::new();
    let child = spawn_remote(
        &sb,
        &[
            "run",
            "--with",
            "slurm:work",
            "--n",
            "2",
            "--mode",
            "sleep",
            "--sleep-ms",
            "1500",
        ],
    );
    wait_for_task(&sb, "work/1@0");
    let (_, job, index) = submitted(&sb)
        .into_iter()
        .find(|(s, _, i)| s == "work" && *i == Some(1))
        .expect("work/1's array task");
    let target = format!("{job}_{}", index.unwrap());
    assert!(Command::new("scancel")
        .arg(&target)
        .status()
        .unwrap()
        .success());
    let o = child.wait_with_output().unwrap();
    // flowlib retries it (times = 1), so the run succeeds; attempt 0 says what happened.
    assert_exit(&o, 0);
    assert!(
        stderr(&o).contains("cancelled: the Slurm job was cancelled (scancel)"),
        "{}",
        text(&o)
    );
    let a0 = attempts(&sb, "work/1")
        .into_iter()
        .find(|a| a.source.attempt == 0)
        .unwrap();
    assert_eq!(a0.status, flowlib::AttemptStatus::Lost);
    assert!(a0.error.unwrap().contains(&format!("[Slurm job {target}]")));
}

#[test]
fn slurm_bad_requests_are_refused_before_anything_is_submitted() {
    if !slurm() {
        return;
    }
    let sb = Sandbox::new();
    // A partition that does not exist.
    let o = sb
        .cmd(&fixture("remoteflow"))
        .env("FLOWLIB_SLURM_PARTITION", "nosuch")
        .env("FLOWLIB_SLURM_OUTPUT", sb.path().join("slurm-out"))
        .args(["run", "--with", "slurm:work"])
        .output()
        .unwrap();
    assert_exit(&o, 2);
    assert!(
        stderr(&o).contains("step `work`: Slurm refuses its job") && stderr(&o).contains("nosuch"),
        "{}",
        text(&o)
    );
    assert_eq!(stderr(&o).lines().count(), 1, "{}", text(&o));
    // Memory above what the partition allows (`small` caps memory at 512 MB; `start` asks
    // for the default 1 GB per CPU there).
    let o = sb
        .cmd(&fixture("remoteflow"))
        .env("FLOWLIB_SLURM_PARTITION", "small")
        .env("FLOWLIB_SLURM_OUTPUT", sb.path().join("slurm-out"))
        .args(["run", "--with", "slurm"])
        .output()
        .unwrap();
    assert_exit(&o, 2);
    assert!(
        stderr(&o).contains("step `start`: Slurm would refuse its job: it would ask for 1024 MiB")
            && stderr(&o).contains("partition `small` allows at most 512 MiB per node"),
        "{}",
        text(&o)
    );
    // `sbatch` missing.
    let o = sb
        .cmd(&fixture("remoteflow"))
        .env("PATH", "/nonexistent")
        .args(["run", "--with", "slurm"])
        .output()
        .unwrap();
    assert_exit(&o, 2);
    assert!(
        stderr(&o).contains("`sbatch` is not on PATH"),
        "{}",
        text(&o)
    );
    // A datastore the cluster cannot see.
    let o = remote(
        &sb,
        &["--datastore", "memory://x", "run", "--with", "slurm"],
    );
    assert_exit(&o, 2);
    assert!(
        stderr(&o).contains("exists only in this process"),
        "{}",
        text(&o)
    );
    assert!(submitted(&sb).is_empty(), "nothing was submitted");
    assert!(
        !sb.datastore().join("flows").exists(),
        "nothing was written"
    );
}

#[test]
fn slurm_job_fetches_the_binary_by_digest_when_its_path_is_not_visible() {
    if !slurm() {
        return;
    }
    let sb = Sandbox::new();
    let tmp = sb.path().join("node-tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let o = sb
        .cmd(&fixture("remoteflow"))
        .env("FLOWLIB_SLURM_OUTPUT", sb.path().join("slurm-out"))
        // As if the compute node saw no file at the driver's path.
        .env("FLOWLIB_SLURM_EXE", "/nonexistent/remoteflow")
        .env("FLOWLIB_SLURM_EXPORT", "TMPDIR")
        .env("TMPDIR", &tmp)
        .args(["run", "--with", "slurm:work", "--n", "1"])
        .output()
        .unwrap();
    assert_exit(&o, 0);
    let digest = latest(&sb).record.code.exe_digest.unwrap();
    let fetched = tmp.join(format!("flowlib-exe-{}", digest.hex()));
    let bytes = std::fs::read(&fetched).expect("the job fetched the binary into its TMPDIR");
    assert_eq!(flowlib::Digest::of(&bytes), digest, "verified by digest");
}

#[test]
fn slurm_cluster_example_runs_its_heavy_step_on_slurm() {
    if !slurm() {
        return;
    }
    let sb = Sandbox::new();
    let o = sb
        .cmd(&flowlib_testkit::example("cluster"))
        .env("FLOWLIB_SLURM_OUTPUT", sb.path().join("slurm-out"))
        .args([
            "run",
            "--with",
            "slurm:simulate",
            "--chunks",
            "3",
            "--points",
            "1000",
        ])
        .output()
        .unwrap();
    assert_exit(&o, 0);
    let jobs = submitted(&sb);
    assert_eq!(jobs.len(), 3, "only simulate went to Slurm: {jobs:?}");
    assert!(jobs.iter().all(|(s, _, _)| s == "simulate"));
    let l = sb.run("cluster", &["logs", "latest/simulate/1"]);
    assert!(
        !stdout(&l).contains("this machine"),
        "ran on a Slurm node: {}",
        text(&l)
    );
}

#[test]
fn slurm_cancel_of_a_run_scancels_its_jobs() {
    if !slurm() {
        return;
    }
    let sb = Sandbox::new();
    let child = spawn_remote(
        &sb,
        &[
            "run",
            "--with",
            "slurm:work",
            "--n",
            "4",
            "--mode",
            "sleep",
            "--sleep-ms",
            "2000",
        ],
    );
    wait_for_task(&sb, "work/1@0");
    let c = remote(&sb, &["cancel", "latest"]);
    assert_exit(&c, 0);
    let o = child.wait_with_output().unwrap();
    assert_exit(&o, 1);
    assert_eq!(
        latest(&sb).status(),
        flowlib::RunStatus::Cancelled,
        "{}",
        text(&o)
    );
    // Every job of the run has ended; none is left running or pending on Slurm.
    let (_, job, _) = submitted(&sb)
        .into_iter()
        .find(|(s, _, _)| s == "work")
        .expect("the array");
    let lines = scontrol_lines(job);
    assert!(
        lines
            .iter()
            .all(|l| !l.contains("JobState=RUNNING") && !l.contains("JobState=PENDING")),
        "{lines:?}"
    );
    assert!(
        lines.iter().any(|l| l.contains("JobState=CANCELLED")),
        "{lines:?}"
    );
}

//! `--with batch` against AWS Batch as moto serves it, with the test harness as the compute
//! environment. What is emulated, plainly:
//!
//! - **Real**: moto 5's Batch API (SubmitJob, DescribeJobs, TerminateJob, DescribeJobQueues,
//!   DescribeComputeEnvironments, DescribeJobDefinitions) over HTTP through `aws-sdk-batch`,
//!   and moto's S3 as the datastore, from which the containers fetch the flow binary and
//!   the array's spec list through presigned URLs (`curl`).
//! - **Emulated**: the compute environment. There is no Docker here, and moto's Docker-less
//!   `batch_simple` mode marks every job SUCCEEDED at submission without running it. So
//!   `tests/support/batch_harness.py` runs moto in-process and takes the place of its Docker
//!   runner: each job's container command and environment, as moto stored them from
//!   SubmitJob, run as a local process (the image's `/bin/sh`), with the variables Batch
//!   sets; the harness moves moto's own job states and records the exit code and reason as
//!   an ECS agent would, enforces the MEMORY requirement (out-of-memory kill) and
//!   TerminateJob, and injects the platform failures a test asks for (a host terminated,
//!   an image that cannot be pulled) and DescribeJobs throttling (HTTP 429). The jobs get the
//!   harness's own AWS credentials, as containers get their job role's.
//! - flowlib's commit records, not moto's job states, decide every task's outcome.
//!
//! Without moto (`scripts/services.sh install`) these tests skip, loudly; with
//! `FLOWLIB_CI=1` a missing moto fails them.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::*;

/// The Python of the moto venv `scripts/services.sh install` makes.
fn moto_python() -> Option<PathBuf> {
    let dir = std::env::var_os("FLOWLIB_SERVICES_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/tmp/flowlib-services"));
    let py = dir.join("moto-venv/bin/python");
    let ok = py.exists()
        && Command::new(&py)
            .args(["-c", "import moto.batch, boto3"])
            .output()
            .is_ok_and(|o| o.status.success());
    if ok {
        return Some(py);
    }
    assert!(
        std::env::var("FLOWLIB_CI").as_deref() != Ok("1"),
        "FLOWLIB_CI=1 but moto is not installed at {}: run `scripts/services.sh install`",
        py.display()
    );
    eprintln!(
        "\n*** SKIPPED: moto is not installed ({} missing); `scripts/services.sh install` to run the AWS Batch tests ***\n",
        py.display()
    );
    None
}

/// moto's Batch and S3 on an ephemeral loopback port, the harness running its jobs.
struct Moto {
    child: Child,
    dir: PathBuf,
    port: u16,
}

impl Drop for Moto {
    fn drop(&mut self) {
        // SIGTERM: the harness kills the jobs still running, then exits.
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let _ = self.child.wait();
    }
}

impl Moto {
    /// Start the harness for `sb` with `faults` (JSON, see `batch_harness.py`); `None`
    /// when moto is not installed (the test skips).
    fn start(sb: &Sandbox, faults: &str) -> Option<Moto> {
        let py = moto_python()?;
        let dir = sb.path().join("batch");
        std::fs::create_dir_all(&dir).unwrap();
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("support/batch_harness.py");
        let log = std::fs::File::create(dir.join("harness.log")).unwrap();
        let child = Command::new(py)
            .arg(&script)
            .arg(&dir)
            .arg(faults)
            // The "hosts'" environment: the job role's credentials, the fixture's task log.
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_DEFAULT_REGION", "us-east-1")
            .env("REMOTE_LOG", sb.path().join("tasks.log"))
            .env("FLOWLIB_CACHE_DIR", sb.path().join(".cache-hosts"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start the moto harness");
        let mut m = Moto {
            child,
            dir: dir.clone(),
            port: 0,
        };
        let t0 = Instant::now();
        loop {
            if let Ok(p) = std::fs::read_to_string(dir.join("port")) {
                m.port = p.trim().parse().unwrap();
                return Some(m);
            }
            if let Ok(Some(st)) = m.child.try_wait() {
                panic!(
                    "the moto harness exited ({st}):\n{}",
                    std::fs::read_to_string(dir.join("harness.log")).unwrap_or_default()
                );
            }
            assert!(
                t0.elapsed() < Duration::from_secs(60),
                "moto never listened"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Every SubmitJob / DescribeJobs / TerminateJob request so far.
    fn calls(&self, action: &str) -> Vec<Value> {
        std::fs::read_to_string(self.dir.join("calls.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .filter(|v| v["action"] == action)
            .map(|v| v["body"].clone())
            .collect()
    }

    /// Submissions of `step`'s jobs (by job name).
    fn submitted(&self, step: &str) -> Vec<Value> {
        self.calls("SubmitJob")
            .into_iter()
            .filter(|b| {
                b["jobName"]
                    .as_str()
                    .is_some_and(|n| n.contains(&format!("-{step}-a")))
            })
            .collect()
    }
}

/// Where a test's datastore is.
enum Store {
    /// `s3://flowlib-batch/<prefix>` on the harness's moto; the containers download the
    /// flow binary from it (presigned URL) and check its digest.
    S3(&'static str),
    /// The same, with the flow binary already in the "image" (`FLOWLIB_BATCH_EXE`, as in a
    /// scratch image with the static build): the 3 s timeout of `work` then does not
    /// include a 200 MB debug binary being fetched and hashed by every container at once.
    S3Image(&'static str),
    /// The sandbox's directory, which the emulated hosts see at the same path
    /// (`FLOWLIB_SHARED_VOLUME=1`).
    Shared,
}

/// `remoteflow` with `args`, its AWS clients pointed at the harness. `work` names its job
/// definition in `#[batch(job_definition = "flowlib-jd")]`; the queue comes from
/// `FLOWLIB_BATCH_QUEUE`.
fn batch_cmd(sb: &Sandbox, m: &Moto, store: Store, args: &[&str]) -> Command {
    let mut c = remote_cmd(sb, args);
    c.env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ENDPOINT_URL_BATCH", m.url())
        .env("AWS_ENDPOINT", m.url())
        .env("AWS_ALLOW_HTTP", "true")
        .env("FLOWLIB_BATCH_QUEUE", "flowlib-q");
    match store {
        Store::S3(prefix) => {
            c.env("FLOWLIB_DATASTORE", format!("s3://flowlib-batch/{prefix}"));
        }
        Store::S3Image(prefix) => {
            c.env("FLOWLIB_DATASTORE", format!("s3://flowlib-batch/{prefix}"))
                .env("FLOWLIB_BATCH_EXE", fixture("remoteflow"));
        }
        Store::Shared => {
            c.env("FLOWLIB_SHARED_VOLUME", "1")
                .env("FLOWLIB_BATCH_EXE", fixture("remoteflow"));
        }
    }
    c
}

fn run_batch(sb: &Sandbox, m: &Moto, store: Store, args: &[&str]) -> Output {
    batch_cmd(sb, m, store, args)
        .output()
        .expect("spawn remoteflow")
}

#[test]
fn batch_linear_flow_runs_every_step_as_a_batch_job_with_its_overrides() {
    let sb = Sandbox::new();
    let Some(m) = Moto::start(&sb, "") else {
        return;
    };
    let mut c = batch_cmd(
        &sb,
        &m,
        Store::S3("linear"),
        &["run", "--with", "batch", "--n", "1"],
    );
    c.env("FLOWLIB_BATCH_JOB_DEFINITION", "flowlib-jd");
    let o = c.output().unwrap();
    assert_exit(&o, 0);
    // One job per step, none an array (the foreach has one item).
    for step in ["start", "work", "join", "end"] {
        let s = m.submitted(step);
        assert_eq!(s.len(), 1, "{step}: {s:?}");
        let b = &s[0];
        assert!(b.get("arrayProperties").is_none(), "{b}");
        assert_eq!(
            b["retryStrategy"]["attempts"], 1,
            "retries are flowlib's: {b}"
        );
        assert_eq!(b["jobQueue"], "flowlib-q");
        assert_eq!(b["tags"]["flowlib:step"], step);
        let env = b["containerOverrides"]["environment"].as_array().unwrap();
        let names: Vec<&str> = env.iter().map(|e| e["name"].as_str().unwrap()).collect();
        assert!(
            names.contains(&"FLOWLIB_EXE_URL"),
            "presigned binary URL: {names:?}"
        );
        assert!(
            !names
                .iter()
                .any(|n| n.contains("SECRET") || *n == "AWS_ACCESS_KEY_ID"),
            "no credentials in a job's environment: {names:?}"
        );
        let cmd = b["containerOverrides"]["command"].as_array().unwrap();
        assert_eq!(cmd[0], "/bin/sh");
        assert!(cmd[2].as_str().unwrap().contains("task-exec --spec"));
    }
    // `work`: #[resources(cpu = 1, memory = "128MiB")] and #[timeout("3s")] (Batch's minimum 60 s).
    let w = &m.submitted("work")[0];
    let reqs = &w["containerOverrides"]["resourceRequirements"];
    assert_eq!(
        reqs,
        &serde_json::json!([{"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "128"}])
    );
    assert_eq!(w["timeout"]["attemptDurationSeconds"], 60);
    assert!(
        w["jobDefinition"].as_str().unwrap().contains("flowlib-jd"),
        "{w}"
    );
    // Output captured in the containers is in the store, read back by `logs`.
    let l = run_batch(&sb, &m, Store::S3("linear"), &["logs", "latest/work/0"]);
    assert_eq!(
        stdout(&l),
        "work 0 says hello on stdout\nwork 0 logged through ctx\n",
        "{}",
        text(&l)
    );
}

#[test]
fn batch_foreach_of_20_is_one_array_job_polled_in_batches_through_throttling() {
    let sb = Sandbox::new();
    // Every third DescribeJobs is throttled (HTTP 429 TooManyRequestsException).
    let Some(m) = Moto::start(&sb, r#"{"throttle_every": 3, "slots": 6}"#) else {
        return;
    };
    let o = run_batch(
        &sb,
        &m,
        Store::S3Image("foreach"),
        &["run", "--with", "batch:work", "--n", "20"],
    );
    assert_exit(&o, 0);
    let work = m.submitted("work");
    assert_eq!(work.len(), 1, "one SubmitJob for the foreach: {work:?}");
    assert_eq!(work[0]["arrayProperties"]["size"], 20);
    let env = work[0]["containerOverrides"]["environment"]
        .as_array()
        .unwrap();
    assert!(
        env.iter().any(|e| e["name"] == "FLOWLIB_SPECS_URL"),
        "the array's specs travel as a stored list: {env:?}"
    );
    let describes = m.calls("DescribeJobs");
    assert!(describes.iter().all(|d| d["jobs"].as_u64().unwrap() <= 100));
    assert!(
        describes.iter().any(|d| d["throttled"] == true),
        "throttling happened and was ridden out"
    );
    let d = run_batch(
        &sb,
        &m,
        Store::S3Image("foreach"),
        &["dump", "latest/end", "total", "--format", "json"],
    );
    let want: u64 = (0..20u64).map(|i| i * i).sum();
    assert!(stdout(&d).contains(&want.to_string()), "{}", text(&d));
}

#[test]
fn batch_out_of_memory_is_decoded_from_the_container_reason() {
    let sb = Sandbox::new();
    let Some(m) = Moto::start(&sb, "") else {
        return;
    };
    let o = run_batch(
        &sb,
        &m,
        Store::Shared,
        &["run", "--with", "batch:work", "--mode", "oom", "--n", "2"],
    );
    assert_exit(&o, 1);
    assert!(
        stderr(&o).contains(
            "work/1: out of memory: AWS Batch killed the container at its memory limit of 128MiB (OutOfMemoryError: Container killed due to memory usage) [AWS Batch job "
        ),
        "{}",
        text(&o)
    );
    // work/0 fitted and committed.
    assert_eq!(
        attempts(&sb, "work/0")[0].status,
        flowlib::AttemptStatus::Ok
    );
}

#[test]
fn batch_timeout_is_decoded_and_the_job_terminated() {
    let sb = Sandbox::new();
    let Some(m) = Moto::start(&sb, "") else {
        return;
    };
    let o = run_batch(
        &sb,
        &m,
        Store::Shared,
        &[
            "run",
            "--with",
            "batch:work",
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
    // Both attempts of work/1 (times = 1) were terminated on Batch, not left running.
    let terminated = m.calls("TerminateJob");
    assert_eq!(terminated.len(), 2, "{terminated:?}");
    assert!(terminated[0]["jobId"].as_str().unwrap().ends_with(":1"));
    assert!(terminated
        .iter()
        .all(|t| t["reason"].as_str().unwrap().starts_with("flowlib:")));
}

#[test]
fn batch_platform_failures_are_retried_without_the_user_retry_budget() {
    let sb = Sandbox::new();
    // work/1's attempt 0 loses its host as it starts; attempt 1 cannot pull its image. The
    // step allows one retry of its own (`times = 1`): were these counted against it, the
    // task would have failed after attempt 1.
    let faults = r#"{"platform": [
        {"name": "-work-a0", "index": 1, "kind": "host_terminated"},
        {"name": "-work-a1", "kind": "cannot_pull"}]}"#;
    let Some(m) = Moto::start(&sb, faults) else {
        return;
    };
    let o = run_batch(
        &sb,
        &m,
        Store::Shared,
        &["run", "--with", "batch:work", "--n", "2"],
    );
    assert_exit(&o, 0);
    let a = attempts(&sb, "work/1");
    let st: Vec<_> = a.iter().map(|a| (a.source.attempt, a.status)).collect();
    assert_eq!(
        st,
        [
            (0, flowlib::AttemptStatus::Lost),
            (1, flowlib::AttemptStatus::Lost),
            (2, flowlib::AttemptStatus::Ok)
        ],
        "{}",
        text(&o)
    );
    let e0 = a[0].error.clone().unwrap();
    assert!(
        e0.starts_with("the host went away: Host EC2 (instance i-0fl0w11b0000000001) terminated. [AWS Batch job "),
        "{e0}"
    );
    let e1 = a[1].error.clone().unwrap();
    assert!(
        e1.starts_with("the container could not start: CannotPullContainerError"),
        "{e1}"
    );
}

#[test]
fn batch_driver_killed_then_resume_reuses_what_committed_on_batch() {
    let sb = Sandbox::new();
    let Some(m) = Moto::start(&sb, r#"{"slots": 2}"#) else {
        return;
    };
    let mut child = batch_cmd(
        &sb,
        &m,
        Store::Shared,
        &["run", "--with", "batch:work", "--n", "6"],
    )
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    let t0 = Instant::now();
    let work_ran = |sb: &Sandbox| {
        task_pids(sb)
            .keys()
            .filter(|k| k.starts_with("work/"))
            .count()
    };
    while work_ran(&sb) < 2 {
        assert!(t0.elapsed() < Duration::from_secs(120), "work never ran");
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    // Batch runs the array to its end without the driver; each task commits.
    let t1 = Instant::now();
    while work_ran(&sb) < 6 {
        assert!(
            t1.elapsed() < Duration::from_secs(120),
            "jobs never finished"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(2));
    let r = run_batch(&sb, &m, Store::Shared, &["resume", "--with", "batch:work"]);
    assert_exit(&r, 0);
    let reused = reused_count(&r);
    assert_eq!(reused, 1 + 6, "start and the six work tasks\n{}", text(&r));
    assert_eq!(m.submitted("work").len(), 1, "the resume ran no work job");
    for (t, pids) in task_pids(&sb)
        .iter()
        .filter(|(k, _)| k.starts_with("work/"))
    {
        assert_eq!(pids.len(), 1, "{t} ran once");
    }
}

#[test]
fn batch_bad_input_is_refused_before_anything_is_submitted() {
    let sb = Sandbox::new();
    let Some(m) = Moto::start(&sb, "") else {
        return;
    };
    // No queue anywhere.
    let o = batch_cmd(&sb, &m, Store::Shared, &["run", "--with", "batch:work"])
        .env_remove("FLOWLIB_BATCH_QUEUE")
        .output()
        .unwrap();
    assert_exit(&o, 2);
    assert!(
        stderr(&o).contains("step `work`: no AWS Batch job queue: give it `#[batch(queue = \"...\")]` or set FLOWLIB_BATCH_QUEUE"),
        "{}",
        text(&o)
    );
    assert_eq!(stderr(&o).lines().count(), 1, "{}", text(&o));
    // A queue that does not exist; a job definition that does not exist.
    let o = batch_cmd(&sb, &m, Store::Shared, &["run", "--with", "batch"])
        .env("FLOWLIB_BATCH_QUEUE", "nosuch")
        .env("FLOWLIB_BATCH_JOB_DEFINITION", "nosuch-jd")
        .output()
        .unwrap();
    assert_exit(&o, 2);
    let e = stderr(&o);
    assert!(
        e.contains("AWS Batch job queue `nosuch` does not exist in us-east-1"),
        "{e}"
    );
    assert!(
        e.contains("AWS Batch job definition `nosuch-jd` does not exist or has no ACTIVE revision"),
        "{e}"
    );
    // A local datastore without the shared-volume assertion.
    let o = batch_cmd(&sb, &m, Store::Shared, &["run", "--with", "batch:work"])
        .env_remove("FLOWLIB_SHARED_VOLUME")
        .output()
        .unwrap();
    assert_exit(&o, 2);
    assert!(
        stderr(&o).contains("which AWS Batch containers cannot see")
            && stderr(&o).contains("FLOWLIB_SHARED_VOLUME=1"),
        "{}",
        text(&o)
    );
    assert!(m.calls("SubmitJob").is_empty(), "nothing was submitted");
    assert!(
        !sb.datastore().join("flows").exists(),
        "no run record was written"
    );
}

#[test]
fn batch_cancel_after_the_driver_died_terminates_the_run_jobs() {
    let sb = Sandbox::new();
    let Some(m) = Moto::start(&sb, "") else {
        return;
    };
    let mut child = batch_cmd(
        &sb,
        &m,
        Store::Shared,
        &[
            "run",
            "--with",
            "batch:work",
            "--n",
            "2",
            "--mode",
            "sleep",
            "--sleep-ms",
            "120000",
        ],
    )
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    wait_for_task(&sb, "work/1@0");
    child.kill().unwrap();
    child.wait().unwrap();
    // The driver is gone; work/1 sleeps on in its job until `cancel` terminates the array.
    let c = run_batch(&sb, &m, Store::Shared, &["cancel", "latest"]);
    assert_exit(&c, 0);
    assert!(
        stdout(&c).contains("its driver is not running; TerminateJob of 1 AWS Batch job(s)"),
        "{}",
        text(&c)
    );
    let array = m.submitted("work");
    assert_eq!(array.len(), 1);
    let terminated = m.calls("TerminateJob");
    assert_eq!(terminated.len(), 1, "{terminated:?}");
    assert!(
        !terminated[0]["jobId"].as_str().unwrap().contains(':'),
        "the whole array, through its parent: {terminated:?}"
    );
    let pid = task_pids(&sb)["work/1@0"][0];
    let t0 = Instant::now();
    while alive(pid) {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "the task process {pid} was not killed"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn batch_image_other_than_the_job_definitions_gets_a_registered_definition() {
    let sb = Sandbox::new();
    let Some(m) = Moto::start(&sb, "") else {
        return;
    };
    // `work` names job definition `flowlib-jd` (image busybox:stable); the image asked for
    // differs, and SubmitJob cannot override an image: a definition is registered for it.
    let image = "123456789012.dkr.ecr.us-east-1.amazonaws.com/flow:2";
    for _ in 0..2 {
        let o = batch_cmd(
            &sb,
            &m,
            Store::Shared,
            &["run", "--with", "batch:work", "--n", "2"],
        )
        .env("FLOWLIB_BATCH_IMAGE", image)
        .output()
        .unwrap();
        assert_exit(&o, 0);
    }
    let defs: Vec<String> = m
        .submitted("work")
        .iter()
        .map(|b| b["jobDefinition"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(defs.len(), 2);
    assert!(
        defs.iter()
            .all(|d| d.contains(":job-definition/flowlib-") && !d.contains("flowlib-jd")),
        "{defs:?}"
    );
    assert_eq!(
        defs[0], defs[1],
        "the second run reuses the registered revision"
    );
}

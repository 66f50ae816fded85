//! `export argo`: a flow exported as an Argo Workflows `WorkflowTemplate` runs with no
//! flowlib driver, to the same result as a local `run`.
//!
//! **No Argo and no Kubernetes can run on these machines**, so nothing here talks to a
//! cluster. Instead every exported template is
//! - validated against Argo's own models (`hera.workflows.models.WorkflowTemplate`, PyPI
//!   `hera`, with no unknown field) and against Argo's schema (the validators npm's
//!   `@kubernetes-models/argo-workflows` compiles from Argo's OpenAPI schema), and
//! - *executed* by `tests/support/argo/argo_run.py`, a small interpreter that walks the DAG
//!   as Argo's controller does (dependencies, `withParam`, parameters, output parameters,
//!   `retryStrategy`, `activeDeadlineSeconds`, the exit handler) and runs each container's
//!   command as a local process of the flow binary (`export argo --exe` its local path).
//!
//! What is compared: every successful task of the Argo-run and of a local `run` with the
//! same parameters, artifact by artifact, by digest (artifacts are content-addressed, so
//! equal digests are equal values).
//!
//! The validators live under `$FLOWLIB_SERVICES_DIR` (`scripts/argo-tools.sh install`, which
//! `scripts/test-all.sh` runs). Without them these tests skip, loudly; under `FLOWLIB_CI=1`
//! a missing validator fails them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use flowlib::{Datastore, OpenMode, RunStatus};
use flowlib_testkit::{example, fixture, text, Sandbox};
use serde_json::Value;

/// The Argo validators and the interpreter's Python.
struct Tools {
    python: PathBuf,
    node_modules: PathBuf,
}

fn support(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("support/argo")
        .join(file)
}

/// The installed validators; `None` (and a loud note) when they are missing, a panic under
/// `FLOWLIB_CI=1`.
fn tools() -> Option<Tools> {
    let dir = PathBuf::from(
        std::env::var("FLOWLIB_SERVICES_DIR").unwrap_or_else(|_| "/tmp/flowlib-services".into()),
    );
    let t = Tools {
        python: dir.join("argo-venv/bin/python"),
        node_modules: dir.join("argo-npm/node_modules"),
    };
    let hera = Command::new(&t.python)
        .args(["-c", "import hera.workflows.models, yaml"])
        .output()
        .is_ok_and(|o| o.status.success());
    let schema = t
        .node_modules
        .join("@kubernetes-models/argo-workflows/package.json")
        .exists()
        && Command::new("node")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
    if hera && schema {
        return Some(t);
    }
    let what = format!(
        "the Argo validators are not installed under {} (hera: {hera}, schema + node: {schema}); `scripts/argo-tools.sh install` installs them",
        dir.display()
    );
    assert!(
        std::env::var("FLOWLIB_CI").as_deref() != Ok("1"),
        "FLOWLIB_CI=1: {what}"
    );
    eprintln!("\n*** SKIPPED: {what} ***\n");
    None
}

/// Export `bin`'s flow for pods that share `sb`'s datastore and run `bin` itself, in YAML
/// and in JSON; check both are the same document and valid by hera's models and Argo's
/// schema. Returns the YAML file.
fn export(t: &Tools, sb: &Sandbox, bin: &Path, extra: &[&str]) -> PathBuf {
    let store = sb.datastore();
    let (yaml, json) = (sb.path().join("wt.yaml"), sb.path().join("wt.json"));
    for (file, format) in [(&yaml, "yaml"), (&json, "json")] {
        let mut args = vec!["export", "argo", "--format", format, "--exe"];
        args.push(bin.to_str().unwrap());
        args.extend(["--datastore-url", store.to_str().unwrap(), "-o"]);
        args.push(file.to_str().unwrap());
        args.extend(extra);
        let o = sb.cmd(bin).args(&args).output().unwrap();
        assert!(o.status.success(), "export argo failed: {}", text(&o));
    }
    let as_json = Command::new(&t.python)
        .args([
            "-c",
            "import json,sys,yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1]))))",
        ])
        .arg(&yaml)
        .output()
        .unwrap();
    assert!(as_json.status.success(), "{}", text(&as_json));
    let from_yaml: Value = serde_json::from_slice(&as_json.stdout).unwrap();
    let from_json: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(from_yaml, from_json, "the YAML and JSON exports differ");
    let hera = Command::new(&t.python)
        .arg(support("validate_hera.py"))
        .arg(&yaml)
        .output()
        .unwrap();
    assert!(hera.status.success(), "hera: {}", text(&hera));
    let schema = Command::new("node")
        .arg(support("validate_schema.mjs"))
        .arg(&t.node_modules)
        .arg(&json)
        .output()
        .unwrap();
    assert!(schema.status.success(), "Argo schema: {}", text(&schema));
    std::fs::create_dir_all(&store).unwrap();
    yaml
}

/// What the interpreter reports of one workflow run.
struct ArgoRun {
    /// The interpreter's exit code: 0 succeeded, 1 failed (2, invalid, panics here).
    code: i32,
    report: Value,
}

impl ArgoRun {
    fn run_id(&self) -> String {
        self.report["run"]
            .as_str()
            .expect("the workflow created a run")
            .to_string()
    }

    /// The attempts the interpreter made of the pods of `template`: (node path, retry, phase).
    fn pods(&self, template: &str) -> Vec<(String, u64, String)> {
        self.report["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|n| n["template"] == template)
            .map(|n| {
                (
                    n["path"].as_str().unwrap().to_string(),
                    n["retry"].as_u64().unwrap(),
                    n["phase"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    }
}

/// Run workflow `yaml` with the interpreter in `sb`: `args` are its `-p NAME=VALUE` and
/// `--error-first STEP` arguments, `env` the pods' extra environment.
fn argo_run(t: &Tools, sb: &Sandbox, yaml: &Path, args: &[&str], env: &[(&str, &str)]) -> ArgoRun {
    let mut c = Command::new(&t.python);
    c.arg(support("argo_run.py"))
        .arg(yaml)
        .args(args)
        .current_dir(sb.path())
        .env_remove("FLOWLIB_DATASTORE")
        .env("FLOWLIB_CACHE_DIR", sb.path().join(".cache"));
    for (k, v) in env {
        c.env(k, v);
    }
    let o = c.output().unwrap();
    let code = o.status.code().unwrap_or(-1);
    assert!(
        code == 0 || code == 1,
        "the interpreter refused the workflow: {}",
        text(&o)
    );
    let report = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("interpreter report: {e}: {}", text(&o)));
    ArgoRun { code, report }
}

/// A local `run` of `bin` in `sb` with `args`; its run id.
fn local_run(sb: &Sandbox, bin: &Path, args: &[&str]) -> String {
    let o = sb.cmd(bin).args(["run", "-q"]).args(args).output().unwrap();
    assert!(o.status.success(), "local run failed: {}", text(&o));
    latest(sb, bin)
}

fn latest(sb: &Sandbox, bin: &Path) -> String {
    let o = sb
        .cmd(bin)
        .args(["runs", "--format", "json", "-n", "1"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let runs = v["runs"]
        .as_array()
        .or_else(|| v.as_array())
        .expect("a list of runs");
    let last = runs.last().expect("a run");
    last["run_id"]
        .as_str()
        .or_else(|| last["record"]["run_id"].as_str())
        .or_else(|| last["info"]["record"]["run_id"].as_str())
        .unwrap_or_else(|| panic!("no run id in {last}"))
        .to_string()
}

fn store(sb: &Sandbox) -> Datastore {
    Datastore::open(sb.datastore().to_str().unwrap(), OpenMode::Existing).unwrap()
}

/// Every successful task of run `run` and its artifacts' digests, without `skip`.
fn artifacts(
    ds: &Datastore,
    flow: &str,
    run: &str,
    skip: &[&str],
) -> BTreeMap<String, BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for a in ds.task_attempts(flow, run).unwrap() {
        if !a.status.is_success() {
            continue;
        }
        let m = a
            .manifest
            .as_ref()
            .expect("a successful attempt has a manifest");
        let arts = m
            .artifacts
            .iter()
            .filter(|(k, _)| !skip.contains(&k.as_str()))
            .map(|(k, b)| (k.clone(), b.digest.to_string()))
            .collect();
        out.insert(a.task_id(), arts);
    }
    out
}

/// The run's status as `runs --format json` reports it to tools.
fn listed_status(sb: &Sandbox, bin: &Path, run: &str) -> String {
    let o = sb
        .cmd(bin)
        .args(["runs", "--format", "json"])
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let text = v.to_string();
    assert!(text.contains(run), "runs does not list {run}: {text}");
    let runs = v["runs"].as_array().or_else(|| v.as_array()).unwrap();
    let r = runs.iter().find(|r| r.to_string().contains(run)).unwrap();
    r["state"]
        .as_str()
        .or_else(|| r["status"].as_str())
        .unwrap_or_else(|| panic!("no state in {r}"))
        .to_string()
}

/// Export `bin`'s flow, run it with the interpreter and locally with the same parameters,
/// and check both runs committed the same tasks with the same artifacts. Returns the
/// sandbox, the Argo run and the local run's id.
fn same_as_local(
    bin: &Path,
    flow: &str,
    params: &[(&str, &str)],
    skip: &[&str],
) -> Option<(Sandbox, ArgoRun, String)> {
    let t = tools()?;
    let sb = Sandbox::new();
    let yaml = export(&t, &sb, bin, &[]);
    let p: Vec<String> = params.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let mut args = Vec::new();
    for x in &p {
        args.extend(["-p", x.as_str()]);
    }
    let argo = argo_run(&t, &sb, &yaml, &args, &[]);
    assert_eq!(argo.code, 0, "the workflow failed: {}", argo.report);
    assert_eq!(argo.report["exit_handler"], "Succeeded");
    let run = argo.run_id();
    let flags: Vec<String> = params
        .iter()
        .flat_map(|(k, v)| [format!("--{k}"), v.to_string()])
        .collect();
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let local = local_run(&sb, bin, &flags);
    let ds = store(&sb);
    let info = ds.run_info(flow, &run).unwrap();
    assert_eq!(info.status(), RunStatus::Succeeded);
    let orch = info
        .record
        .orchestrator
        .as_ref()
        .expect("the run names its workflow");
    assert_eq!(orch.engine, "argo");
    assert!(orch.workflow.starts_with("flowlib-test-"), "{orch:?}");
    let (a, l) = (
        artifacts(&ds, flow, &run, skip),
        artifacts(&ds, flow, &local, skip),
    );
    assert_eq!(
        a.keys().collect::<Vec<_>>(),
        l.keys().collect::<Vec<_>>(),
        "tasks differ"
    );
    assert_eq!(
        a, l,
        "artifacts differ between the Argo run and the local run"
    );
    assert_eq!(listed_status(&sb, bin, &run), "succeeded");
    Some((sb, argo, local))
}

#[test]
fn a_linear_flow_runs_from_its_export_as_a_local_run_does() {
    let Some((sb, _argo, _)) = same_as_local(&example("hello"), "Hello", &[("name", "Ada")], &[])
    else {
        return;
    };
    // `dump` reads the Argo run as any run.
    let o = sb
        .cmd(&example("hello"))
        .args(["dump", "latest/end", "--format", "json"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
}

#[test]
fn a_branch_and_its_join_run_from_the_export() {
    same_as_local(&example("branch"), "Branch", &[("n", "50")], &[]);
}

#[test]
fn a_foreach_of_20_fans_out_with_param_and_joins() {
    let Some((_sb, argo, _)) = same_as_local(
        &fixture("remoteflow"),
        "Remote",
        &[("n", "20")],
        &["pid", "pids", "driver_pid"],
    ) else {
        return;
    };
    let work = argo.pods("step-work");
    assert_eq!(work.len(), 20, "one pod per item: {work:?}");
    assert!(
        work.iter()
            .any(|(p, _, _)| p.ends_with("start-each(19)/work")),
        "{work:?}"
    );
}

#[test]
fn a_nested_foreach_after_a_branch_runs_from_the_export() {
    let Some((sb, argo, _)) = same_as_local(
        &fixture("argoflow"),
        "Shapes",
        &[("rows-n", "3"), ("cols-n", "4"), ("label", "nested")],
        &[],
    ) else {
        return;
    };
    assert_eq!(argo.pods("step-cell").len(), 12);
    assert!(argo
        .pods("step-cell")
        .iter()
        .any(|(p, _, _)| p.ends_with("fan-each(2)/row-each(2.3)/cell")));
    // What the end step printed is stored, and `logs` shows it.
    let run = argo.run_id();
    let o = sb
        .cmd(&fixture("argoflow"))
        .args(["logs", &format!("{run}/end")])
        .output()
        .unwrap();
    assert!(
        text(&o).contains("nested: total 600 (left 6, right 100) over 12 cells"),
        "{}",
        text(&o)
    );
}

/// `work/1` fails its first attempt (`--mode fail-once`): Argo retries it per its
/// `retryStrategy` with `--attempt {{retries}}`, and the run succeeds; a platform failure
/// (a pod deleted before it ran) of a step without `#[retry]` is retried too (`OnError`).
#[test]
fn a_failing_task_is_retried_per_retry_strategy() {
    let Some(t) = tools() else {
        return;
    };
    let sb = Sandbox::new();
    let bin = fixture("remoteflow");
    let yaml = export(&t, &sb, &bin, &[]);
    let doc: Value =
        serde_json::from_str(&std::fs::read_to_string(sb.path().join("wt.json")).unwrap()).unwrap();
    let work = doc["spec"]["templates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "step-work")
        .unwrap();
    // #[retry(times = 1, delay = "10ms")] plus the default platform budget of 3.
    assert_eq!(work["retryStrategy"]["limit"], 4);
    assert_eq!(work["retryStrategy"]["retryPolicy"], "Always");
    assert_eq!(work["retryStrategy"]["backoff"]["duration"], "10ms");
    assert_eq!(work["activeDeadlineSeconds"], 3);
    assert_eq!(work["container"]["resources"]["limits"]["memory"], "128Mi");
    let argo = argo_run(
        &t,
        &sb,
        &yaml,
        &["-p", "mode=fail-once", "--error-first", "join"],
        &[("REMOTE_LOG", sb.path().join("tasks.log").to_str().unwrap())],
    );
    assert_eq!(argo.code, 0, "{}", argo.report);
    let item1: Vec<_> = argo
        .pods("step-work")
        .into_iter()
        .filter(|(p, _, _)| p.ends_with("(1)/work"))
        .collect();
    assert_eq!(item1.len(), 2, "{item1:?}");
    assert_eq!((item1[0].1, item1[0].2.as_str()), (0, "Failed"));
    assert_eq!((item1[1].1, item1[1].2.as_str()), (1, "Succeeded"));
    let join = argo.pods("step-join");
    assert_eq!(
        join.iter().map(|j| j.2.as_str()).collect::<Vec<_>>(),
        ["Error", "Succeeded"]
    );
    let ds = store(&sb);
    let run = argo.run_id();
    let attempts: Vec<(String, u32, String)> = ds
        .task_attempts("Remote", &run)
        .unwrap()
        .into_iter()
        .filter(|a| a.task_id() == "work/1")
        .map(|a| (a.task_id(), a.source.attempt, a.status.to_string()))
        .collect();
    assert_eq!(
        attempts,
        [
            ("work/1".into(), 0, "failed".into()),
            ("work/1".into(), 1, "ok".into())
        ]
    );
    // The pod that never ran left attempt 0 of `join` without a record: it is recorded lost,
    // so attempts stay numbered without gaps.
    let join: Vec<(u32, String)> = ds
        .task_attempts("Remote", &run)
        .unwrap()
        .into_iter()
        .filter(|a| a.task_id() == "join")
        .map(|a| (a.source.attempt, a.status.to_string()))
        .collect();
    assert_eq!(join, [(0, "lost".into()), (1, "ok".into())]);
    let total: u64 = ds.artifact("Remote", &run, "join", "total").unwrap();
    assert_eq!(total, 1 + 4 + 9);
    assert_eq!(
        ds.run_info("Remote", &run).unwrap().status(),
        RunStatus::Succeeded
    );
}

/// An Argo run whose task fails on every attempt ends `failed` (its exit handler writes the
/// end record, so `runs` does not call it killed), and flowlib's `resume` finishes it,
/// reusing what the Argo run committed, to the result of a local run.
#[test]
fn a_failed_argo_run_is_resumed_by_flowlib() {
    let Some(t) = tools() else {
        return;
    };
    let sb = Sandbox::new();
    let bin = fixture("argoflow");
    let yaml = export(&t, &sb, &bin, &[]);
    let marker = sb.path().join("fail-now");
    std::fs::write(&marker, "").unwrap();
    let env = [("ARGO_FAIL_FILE", marker.to_str().unwrap())];
    let argo = argo_run(&t, &sb, &yaml, &[], &env);
    assert_eq!(argo.code, 1, "{}", argo.report);
    assert_eq!(argo.report["exit_handler"], "Succeeded");
    let run = argo.run_id();
    // cell/2.1: #[retry(times = 1)] + 3 platform retries, all failing.
    assert_eq!(
        argo.pods("step-cell")
            .iter()
            .filter(|p| p.2 == "Failed")
            .count(),
        5
    );
    assert!(
        argo.pods("step-join-rows").is_empty(),
        "fail fast: nothing after the failure"
    );
    let ds = store(&sb);
    let info = ds.run_info("Shapes", &run).unwrap();
    assert_eq!(info.status(), RunStatus::Failed);
    let end = info.end.as_ref().unwrap();
    assert_eq!(end.failures.len(), 1, "{:?}", end.failures);
    assert_eq!(end.failures[0].0, "cell/2.1");
    assert!(
        end.failures[0].1.contains("fails while"),
        "{:?}",
        end.failures
    );
    assert_eq!(listed_status(&sb, &bin, &run), "failed");

    std::fs::remove_file(&marker).unwrap();
    let o = sb
        .cmd(&bin)
        .env("ARGO_FAIL_FILE", &marker)
        .args(["resume", "--origin", &run])
        .output()
        .unwrap();
    assert!(o.status.success(), "resume failed: {}", text(&o));
    let resumed = latest(&sb, &bin);
    assert_ne!(resumed, run);
    let r = ds.run_info("Shapes", &resumed).unwrap();
    assert_eq!(r.status(), RunStatus::Succeeded);
    let reused = r.record.resume.as_ref().unwrap().reused_tasks;
    assert_eq!(
        reused, 23,
        "everything but cell/2.1 and what follows it is reused"
    );
    let local = local_run(&sb, &bin, &[]);
    assert_eq!(
        artifacts(&ds, "Shapes", &resumed, &[]),
        artifacts(&ds, "Shapes", &local, &[]),
        "the resumed Argo run differs from a local run"
    );
}

/// A run an Argo workflow drives has no driver heartbeat: while its workflow runs it is
/// listed running, not killed, and `resume` refuses it naming the workflow.
#[test]
fn a_run_argo_drives_is_running_until_its_exit_handler() {
    let sb = Sandbox::new();
    let bin = fixture("argoflow");
    let init = sb
        .cmd(&bin)
        .args([
            "argo-init",
            "--workflow",
            "shapes-x7k2p",
            "--uid",
            "0b5e-uid",
            "--rows-n",
            "2",
        ])
        .output()
        .unwrap();
    assert!(init.status.success(), "{}", text(&init));
    let run = String::from_utf8_lossy(&init.stdout).trim().to_string();
    assert_eq!(listed_status(&sb, &bin, &run), "running");
    let runs = sb.cmd(&bin).arg("runs").output().unwrap();
    assert!(
        text(&runs).contains("on argo workflow shapes-x7k2p (uid 0b5e-uid)"),
        "{}",
        text(&runs)
    );
    // A template exported from another build of the flow is refused before any run exists.
    let stale = sb
        .cmd(&bin)
        .args([
            "argo-init",
            "--workflow",
            "w",
            "--uid",
            "u",
            "--graph",
            "sha256:0000",
        ])
        .output()
        .unwrap();
    assert_eq!(stale.status.code(), Some(2), "{}", text(&stale));
    assert!(
        text(&stale).contains("export the template again"),
        "{}",
        text(&stale)
    );
    let o = sb
        .cmd(&bin)
        .args(["resume", "--origin", &run])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("argo workflow shapes-x7k2p (uid 0b5e-uid)"),
        "{}",
        text(&o)
    );
    // The exit handler of a workflow that never got past its first step.
    let end = sb
        .cmd(&bin)
        .args(["argo-end", "--run", &run, "--status", "Failed"])
        .output()
        .unwrap();
    assert!(end.status.success(), "{}", text(&end));
    assert_eq!(listed_status(&sb, &bin, &run), "failed");
    let info = store(&sb).run_info("Shapes", &run).unwrap();
    let failures = &info.end.unwrap().failures;
    assert!(
        failures[0]
            .1
            .contains("ended Failed before the end step committed"),
        "{failures:?}"
    );
    let params = &info.record.params;
    assert_eq!(params["rows_n"], 2);
    // Bad input: one line, exit 2.
    let bad = sb
        .cmd(&bin)
        .args([
            "export",
            "argo",
            "--name",
            "Not_A_Name",
            "--datastore-url",
            "/mnt/flows",
        ])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&bad.stderr).lines().count(),
        1,
        "{}",
        text(&bad)
    );
    for args in [
        &["export", "argo"][..],
        &["export", "argo", "--datastore-url", "./.flowlib"],
        &[
            "export",
            "argo",
            "--datastore-url",
            "/mnt/flows",
            "--format",
            "xml",
        ],
    ] {
        let o = sb.cmd(&bin).args(args).output().unwrap();
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", text(&o));
        assert_eq!(
            String::from_utf8_lossy(&o.stderr).lines().count(),
            1,
            "{args:?}: {}",
            text(&o)
        );
    }
    let bad = sb
        .cmd(&bin)
        .args(["export", "argo", "--datastore-url", "memory://x"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2), "{}", text(&bad));
}

/// `work/1` sleeps past its `#[timeout("3s")]`: `activeDeadlineSeconds` kills its pod on
/// every attempt, the next attempt records the killed one `lost`, and the end record keeps
/// Argo's own words for each death.
#[test]
fn a_task_past_its_deadline_is_killed_and_explained() {
    let Some(t) = tools() else {
        return;
    };
    let sb = Sandbox::new();
    let yaml = export(&t, &sb, &fixture("remoteflow"), &[]);
    let params = ["-p", "n=2", "-p", "mode=sleep", "-p", "sleep-ms=30000"];
    let argo = argo_run(&t, &sb, &yaml, &params, &[]);
    assert_eq!(argo.code, 1, "{}", argo.report);
    let killed = argo
        .pods("step-work")
        .into_iter()
        .filter(|(p, _, phase)| p.ends_with("(1)/work") && phase == "Failed")
        .count();
    assert_eq!(killed, 5, "#[retry(times = 1)] + 3 platform retries");
    let ds = store(&sb);
    let run = argo.run_id();
    let lost = ds
        .task_attempts("Remote", &run)
        .unwrap()
        .into_iter()
        .filter(|a| a.task_id() == "work/1" && a.status.to_string() == "lost")
        .count();
    assert_eq!(lost, 4, "attempts 0-3 recorded lost by their successors");
    let end = ds.run_info("Remote", &run).unwrap().end.unwrap();
    let all = format!("{:?}", end.failures);
    assert!(all.contains("work/1"), "{all}");
    assert!(all.contains("longer than the specified deadline"), "{all}");
}

/// Every example flow and fixture (resources, retries, timeouts, checkpoints, Slurm
/// options, a nested foreach) exports a template that Argo's models and schema accept.
#[test]
fn every_example_exports_a_valid_template() {
    let Some(t) = tools() else {
        return;
    };
    let sb = Sandbox::new();
    let bins = [
        example("hello"),
        example("branch"),
        example("train"),
        example("cluster"),
        example("checkpointed"),
        fixture("remoteflow"),
        fixture("crashflow"),
        fixture("argoflow"),
    ];
    let (mut yamls, mut jsons) = (Vec::new(), Vec::new());
    for (i, bin) in bins.iter().enumerate() {
        for (format, list) in [("yaml", &mut yamls), ("json", &mut jsons)] {
            let file = sb.path().join(format!("{i}.{format}"));
            let o = sb
                .cmd(bin)
                .args(["export", "argo", "--datastore-url", "/mnt/flows"])
                .args([
                    "--image",
                    "registry.example.com/flow:1",
                    "--secret",
                    "s3-creds",
                ])
                .args(["--format", format, "-o", file.to_str().unwrap()])
                .output()
                .unwrap();
            assert!(o.status.success(), "{}: {}", bin.display(), text(&o));
            list.push(file);
        }
    }
    let hera = Command::new(&t.python)
        .arg(support("validate_hera.py"))
        .args(&yamls)
        .output()
        .unwrap();
    assert!(hera.status.success(), "hera: {}", text(&hera));
    let schema = Command::new("node")
        .arg(support("validate_schema.mjs"))
        .arg(&t.node_modules)
        .args(&jsons)
        .output()
        .unwrap();
    assert!(schema.status.success(), "Argo schema: {}", text(&schema));
}

/// `cancel` of a run Argo drives: no driver watches for it, so each later step refuses to
/// start, and the exit handler ends the run `cancelled`; `resume` continues it.
#[test]
fn cancel_stops_an_argo_run_between_tasks() {
    let sb = Sandbox::new();
    let bin = fixture("argoflow");
    let init = sb
        .cmd(&bin)
        .args(["argo-init", "--workflow", "shapes-c4n", "--uid", "u-1"])
        .output()
        .unwrap();
    assert!(init.status.success(), "{}", text(&init));
    let run = String::from_utf8_lossy(&init.stdout).trim().to_string();
    let step = |name: &str| {
        sb.cmd(&bin)
            .args([
                "step",
                name,
                "--run",
                &run,
                "--task",
                "_",
                "--attempt",
                "0",
                "--capture",
            ])
            .output()
            .unwrap()
    };
    assert!(step("start").status.success());
    let cancel = sb.cmd(&bin).args(["cancel", &run]).output().unwrap();
    assert!(
        text(&cancel).contains("argo stop shapes-c4n"),
        "{}",
        text(&cancel)
    );
    let left = step("left");
    assert_eq!(left.status.code(), Some(1));
    assert!(text(&left).contains("was cancelled"), "{}", text(&left));
    let end = sb
        .cmd(&bin)
        .args(["argo-end", "--run", &run, "--status", "Failed"])
        .output()
        .unwrap();
    assert!(end.status.success(), "{}", text(&end));
    assert_eq!(listed_status(&sb, &bin, &run), "cancelled");
    let resume = sb
        .cmd(&bin)
        .args(["resume", "--origin", &run])
        .output()
        .unwrap();
    assert!(resume.status.success(), "{}", text(&resume));
    let resumed = latest(&sb, &bin);
    let r = store(&sb).run_info("Shapes", &resumed).unwrap();
    assert_eq!(r.status(), RunStatus::Succeeded);
    assert_eq!(r.record.resume.unwrap().reused_tasks, 1, "start is reused");
}

//! `--with kubernetes` against `tests/support/k8s_api.py`.
//!
//! **What is emulated, plainly:** no Kubernetes cluster can run on these machines (no
//! container runtime, no kube-apiserver package), so the API server is a test server that
//! speaks the real Kubernetes REST/JSON protocol for the calls the executor makes (Jobs,
//! pods, pod logs, the Eviction API, nodes, secrets) and *runs* each pod's command as a
//! local process with the pod's environment, enforcing its memory limit (OOMKilled, exit
//! 137) and `activeDeadlineSeconds` (DeadlineExceeded) as a kubelet would. flowlib talks to
//! it through `kube::Client` and an ordinary kubeconfig, exactly as to a cluster; the Job
//! manifests it created are also checked against the official Kubernetes schemas with
//! `kubernetes-validate --strict` (PyPI).
//!
//! The datastore is the sandbox's directory, "mounted" in the pods through
//! `FLOWLIB_K8S_VOLUME` (the pods run on this host, so they see the same path); one test
//! uses S3 (moto) instead, where pods download the flow binary through a presigned URL.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use flowlib_testkit::k8s::K8sApiServer;

use super::*;

/// One test cluster at a time: each "node" runs its pods as processes of this machine,
/// and the tasks' 3 s timeouts must not measure other tests' load.
static ONE_CLUSTER: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The test API server for one test, holding the one-cluster lock.
struct K8s {
    server: K8sApiServer,
    state: PathBuf,
    _one: std::sync::MutexGuard<'static, ()>,
}

impl K8s {
    fn start(sb: &Sandbox, extra: &[&str]) -> K8s {
        let one = ONE_CLUSTER.lock().unwrap_or_else(|e| e.into_inner());
        let state = sb.path().join("k8s");
        K8s {
            server: K8sApiServer::start(&state, extra),
            state,
            _one: one,
        }
    }

    fn kubeconfig(&self) -> PathBuf {
        self.server.kubeconfig()
    }

    fn request(&self, method: &str, path: &str, body: Option<&str>) -> serde_json::Value {
        let json = self.server.request(method, path, body);
        serde_json::from_str(&json).unwrap_or(serde_json::Value::String(json))
    }

    fn get(&self, path: &str) -> serde_json::Value {
        self.request("GET", path, None)
    }

    /// The Jobs the server was asked to create, as created (name -> manifest).
    fn manifests(&self) -> Vec<serde_json::Value> {
        let Ok(dir) = std::fs::read_dir(self.state.join("manifests")) else {
            return Vec::new();
        };
        let mut v: Vec<serde_json::Value> = dir
            .flatten()
            .map(|f| serde_json::from_slice(&std::fs::read(f.path()).unwrap()).unwrap())
            .collect();
        v.sort_by_key(|j| j["metadata"]["name"].as_str().unwrap().to_string());
        v
    }

    /// The created Jobs of step `step`.
    fn jobs_of(&self, step: &str) -> Vec<serde_json::Value> {
        self.manifests()
            .into_iter()
            .filter(|j| j["metadata"]["labels"]["flowlib.dev/step"] == step)
            .collect()
    }

    fn pods(&self) -> Vec<serde_json::Value> {
        self.get("/api/v1/namespaces/default/pods")["items"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }
}

/// `remoteflow` with its steps on the test cluster. The "image" holds the flow binary at
/// the fixture's path (`FLOWLIB_K8S_EXE`), as an image built with the binary would; the
/// tests of fetching it by digest remove that.
fn k8s_cmd(sb: &Sandbox, k: &K8s, args: &[&str]) -> Command {
    let tmp = sb.path().join("pod-tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let mut c = remote_cmd(sb, args);
    c.env("KUBECONFIG", k.kubeconfig())
        .env("FLOWLIB_K8S_IMAGE", "busybox:1.36")
        .env("FLOWLIB_K8S_VOLUME", "flowlib-datastore")
        .env("FLOWLIB_K8S_ENV", "REMOTE_LOG,TMPDIR")
        .env("FLOWLIB_K8S_EXE", fixture("remoteflow"))
        .env("TMPDIR", &tmp);
    c
}

/// Start `remoteflow` on the test cluster in the background, its output piped.
fn spawn_k8s(sb: &Sandbox, k: &K8s, args: &[&str]) -> Child {
    k8s_cmd(sb, k, args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn remoteflow")
}

fn run_k8s(sb: &Sandbox, k: &K8s, args: &[&str]) -> Output {
    k8s_cmd(sb, k, args).output().expect("spawn remoteflow")
}

/// The schema validator, when installed (`scripts/test-all.sh` installs it); panics in CI
/// when it is not.
fn kubernetes_validate() -> Option<PathBuf> {
    let dir = std::env::var_os("FLOWLIB_SERVICES_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/tmp/flowlib-services"));
    let exe = dir.join("k8s-venv/bin/kubernetes-validate");
    if exe.exists() {
        return Some(exe);
    }
    assert!(
        std::env::var_os("FLOWLIB_CI").is_none(),
        "FLOWLIB_CI is set but kubernetes-validate is not installed at {} (scripts/services.sh install)",
        exe.display()
    );
    eprintln!("\n*** SKIPPED schema validation: kubernetes-validate is not installed ({}); scripts/services.sh install ***\n", exe.display());
    None
}

#[test]
fn kubernetes_linear_and_foreach_flow_runs_every_step_as_jobs() {
    let sb = Sandbox::new();
    let k = K8s::start(&sb, &[]);
    // The binary is not in the image: the pods copy it by digest from the datastore.
    let o = k8s_cmd(&sb, &k, &["run", "--with", "kubernetes", "--n", "3"])
        .env_remove("FLOWLIB_K8S_EXE")
        .output()
        .unwrap();
    assert_exit(&o, 0);
    let exe = &k.manifests()[0]["spec"]["template"]["spec"]["containers"][0]["env"];
    assert!(
        exe.as_array()
            .unwrap()
            .iter()
            .any(|e| e["name"] == "FLOWLIB_EXE_FILE"),
        "{exe}"
    );
    let jobs = k.manifests();
    let steps: Vec<&str> = jobs
        .iter()
        .map(|j| {
            j["metadata"]["labels"]["flowlib.dev/step"]
                .as_str()
                .unwrap()
        })
        .collect();
    let mut sorted = steps.clone();
    sorted.sort();
    assert_eq!(sorted, ["end", "join", "start", "work"], "{steps:?}");
    // The foreach is one Indexed Job; flowlib does the retries.
    let work = &k.jobs_of("work")[0]["spec"];
    assert_eq!(work["completionMode"], "Indexed");
    assert_eq!(work["completions"], 3);
    assert_eq!(work["backoffLimitPerIndex"], 0);
    assert_eq!(
        work["podFailurePolicy"]["rules"][0]["onPodConditions"][0]["type"],
        "DisruptionTarget"
    );
    let pod = &work["template"]["spec"];
    let c = &pod["containers"][0];
    assert_eq!(c["resources"]["limits"]["memory"], "128Mi");
    assert_eq!(c["resources"]["requests"]["cpu"], "1");
    assert_eq!(
        pod["activeDeadlineSeconds"], 63,
        "#[timeout(\"3s\")] plus the backstop margin"
    );
    assert_eq!(pod["restartPolicy"], "Never");
    // The pod gets the binary by digest; the spec holds no credentials.
    let env: Vec<&str> = c["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert!(env.contains(&"FLOWLIB_EXE_DIGEST"), "{env:?}");
    // The Indexed Job's pods fetch their spec list by digest: every pod object carries the
    // template's environment, so the digests are not inlined there.
    assert!(env.contains(&"FLOWLIB_SPECS_DIGEST"), "{env:?}");
    let inline = c["env"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "FLOWLIB_SPECS")
        .map(|e| e["value"].as_str().unwrap_or("").to_string());
    assert!(inline.unwrap_or_default().is_empty(), "{}", c["env"]);
    assert!(!env.iter().any(|e| e.contains("SECRET")), "{env:?}");
    assert!(c["command"][2]
        .as_str()
        .unwrap()
        .contains("task-exec --spec"));
    // Every task ran in a pod (a process of the test server), not in the driver.
    let pids = task_pids(&sb);
    let driver = o.status.code();
    assert!(driver.is_some());
    assert_eq!(pids.len(), 4, "start and work note their pid: {pids:?}");
    assert_eq!(k.pods().len(), 6, "one pod per task");
    // Output is stored like any other; the results are a local run's.
    let l = run_k8s(&sb, &k, &["logs", "latest/work/1"]);
    assert_eq!(
        stdout(&l),
        "work 1 says hello on stdout\nwork 1 logged through ctx\n",
        "{}",
        text(&l)
    );
    let d = run_k8s(
        &sb,
        &k,
        &["dump", "latest/end", "total", "--format", "json"],
    );
    assert!(stdout(&d).contains('5'), "0 + 1 + 4: {}", text(&d));

    // The manifests are valid against the official Kubernetes schemas, strictly.
    if let Some(validate) = kubernetes_validate() {
        let files: Vec<PathBuf> = std::fs::read_dir(k.state.join("manifests"))
            .unwrap()
            .flatten()
            .map(|f| f.path())
            .collect();
        let v = Command::new(validate)
            .args(["--strict", "-k", "1.33.0"])
            .args(&files)
            .output()
            .unwrap();
        assert!(v.status.success(), "{}", text(&v));
        assert!(
            !String::from_utf8_lossy(&v.stdout).contains("ERROR"),
            "{}",
            text(&v)
        );
    }
}

#[test]
fn kubernetes_foreach_of_20_is_one_indexed_job_throttled() {
    let sb = Sandbox::new();
    let k = K8s::start(&sb, &["--node-cpu", "8"]);
    let o = run_k8s(
        &sb,
        &k,
        &[
            "run",
            "--with",
            "kubernetes:work",
            "--n",
            "20",
            "--max-workers",
            "3",
        ],
    );
    assert_exit(&o, 0);
    let work = k.jobs_of("work");
    assert_eq!(work.len(), 1, "one Job for the whole foreach");
    assert_eq!(work[0]["spec"]["completions"], 20);
    assert_eq!(work[0]["spec"]["parallelism"], 3, "--max-workers 3");
    let pods: Vec<_> = k
        .pods()
        .into_iter()
        .filter(|p| p["metadata"]["labels"]["flowlib.dev/step"] == "work")
        .collect();
    assert_eq!(pods.len(), 20);
    // start, join and end ran on threads in the driver: only `work` went to the cluster.
    assert_eq!(k.manifests().len(), 1);
    let d = run_k8s(
        &sb,
        &k,
        &["dump", "latest/end", "total", "--format", "json"],
    );
    let want: u64 = (0..20u64).map(|i| i * i).sum();
    assert!(
        stdout(&d).contains(&want.to_string()),
        "{want}: {}",
        text(&d)
    );
    // Polling is two list requests per poll (the run's Jobs, the run's pods), whatever
    // the number of tasks; the test itself listed the pods once above.
    let stats = k.get("/_test/stats");
    let count = |key: &str| stats["by_kind"][key].as_u64().unwrap_or(0);
    let job_lists = count("GET apis/batch/v1/default/jobs");
    let pod_lists = count("GET api/v1/default/pods") - 1;
    assert!(job_lists >= 1 && job_lists == pod_lists, "{stats}");
    assert!(
        job_lists < 20,
        "fewer polls than tasks: {job_lists} for 20 tasks"
    );
}

#[test]
fn kubernetes_out_of_memory_and_timeout_are_decoded() {
    let sb = Sandbox::new();
    let k = K8s::start(&sb, &[]);
    let o = run_k8s(
        &sb,
        &k,
        &[
            "run",
            "--with",
            "kubernetes:work",
            "--mode",
            "oom",
            "--n",
            "2",
        ],
    );
    assert_exit(&o, 1);
    assert!(
        stderr(&o).contains(
            "work/1: out of memory: Kubernetes killed the container at its memory limit of 128MiB (OOMKilled"
        ),
        "{}",
        text(&o)
    );
    drop(k);
    let sb = Sandbox::new();
    let k = K8s::start(&sb, &[]);
    let o = run_k8s(
        &sb,
        &k,
        &[
            "run",
            "--with",
            "kubernetes:work",
            "--mode",
            "sleep",
            "--sleep-ms",
            "60000",
            "--n",
            "2",
        ],
    );
    assert_exit(&o, 1);
    assert!(stderr(&o).contains("work/1: timed out"), "{}", text(&o));
    // No pod of the timed-out task is left running.
    std::thread::sleep(Duration::from_millis(300));
    let running: Vec<_> = k
        .pods()
        .into_iter()
        .filter(|p| p["status"]["phase"] == "Running")
        .collect();
    assert!(running.is_empty(), "{running:?}");
}

/// Two evictions of one task while its user retry budget is 1 (`#[retry(times = 1)]`): the
/// run still succeeds, because disruptions count against the platform budget.
#[test]
fn kubernetes_evictions_are_platform_failures_outside_the_user_retry_budget() {
    let sb = Sandbox::new();
    let k = K8s::start(&sb, &[]);
    let child = spawn_k8s(
        &sb,
        &k,
        &[
            "run",
            "--with",
            "kubernetes:work",
            "--mode",
            "sleep",
            "--sleep-ms",
            "2000",
            "--n",
            "2",
        ],
    );
    for attempt in 0..2 {
        wait_for_task(&sb, &format!("work/1@{attempt}"));
        // Evict the running pod of work/1 through the Eviction API.
        // Attempt 0 of work/1 is index 1 of the foreach's Indexed Job; a retry is a Job
        // of its own (no index), labelled with its attempt.
        let want = attempt.to_string();
        let pod = k
            .pods()
            .into_iter()
            .find(|p| {
                let l = &p["metadata"]["labels"];
                p["status"]["phase"] == "Running"
                    && l["flowlib.dev/step"] == "work"
                    && l["flowlib.dev/attempt"] == want.as_str()
                    && match l["batch.kubernetes.io/job-completion-index"].as_str() {
                        Some(i) => i == "1",
                        None => true,
                    }
            })
            .unwrap_or_else(|| panic!("no running pod of work/1: {:?}", k.pods()));
        let name = pod["metadata"]["name"].as_str().unwrap();
        let r = k.request(
            "POST",
            &format!("/api/v1/namespaces/default/pods/{name}/eviction"),
            Some(r#"{"apiVersion":"policy/v1","kind":"Eviction"}"#),
        );
        assert_eq!(r["status"], "Success", "{r}");
    }
    let o = child.wait_with_output().unwrap();
    assert_exit(&o, 0);
    let w1: Vec<_> = attempts(&sb, "work/1")
        .into_iter()
        .map(|a| (a.source.attempt, a.status))
        .collect();
    assert_eq!(
        w1,
        [
            (0, flowlib::AttemptStatus::Lost),
            (1, flowlib::AttemptStatus::Lost),
            (2, flowlib::AttemptStatus::Ok)
        ],
        "{}",
        text(&o)
    );
    assert!(
        stderr(&o).contains("was disrupted") && stderr(&o).contains("EvictionByEvictionAPI"),
        "{}",
        text(&o)
    );
}

#[test]
fn kubernetes_driver_killed_mid_run_then_resume_reuses_what_committed() {
    let sb = Sandbox::new();
    let k = K8s::start(&sb, &[]);
    let mut child = k8s_cmd(&sb, &k, &["run", "--with", "kubernetes:work", "--n", "6"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while task_pids(&sb)
        .keys()
        .filter(|k| k.starts_with("work/"))
        .count()
        < 2
    {
        assert!(t0.elapsed() < Duration::from_secs(120), "work never ran");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    // The Job runs on in the cluster without its driver, to its end.
    let t1 = Instant::now();
    while k
        .pods()
        .iter()
        .any(|p| p["status"]["phase"] == "Running" || p["status"]["phase"] == "Pending")
        || k.pods().len() < 6
    {
        assert!(
            t1.elapsed() < Duration::from_secs(120),
            "pods never finished"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let ran_before: Vec<String> = task_pids(&sb)
        .keys()
        .filter(|k| k.starts_with("work/"))
        .cloned()
        .collect();
    assert_eq!(ran_before.len(), 6, "every pod ran without the driver");
    let r = run_k8s(&sb, &k, &["resume", "--with", "kubernetes:work"]);
    assert_exit(&r, 0);
    let reused = reused_count(&r);
    assert_eq!(reused, 1 + 6, "start and every work task: {}", text(&r));
    for (t, pids) in task_pids(&sb)
        .iter()
        .filter(|(t, _)| t.starts_with("work/"))
    {
        assert_eq!(pids.len(), 1, "{t} ran once");
    }
}

#[test]
fn kubernetes_bad_requests_are_refused_before_anything_is_submitted() {
    let sb = Sandbox::new();
    // No kubeconfig.
    let o = remote_cmd(&sb, &["run", "--with", "kubernetes"])
        .env("KUBECONFIG", sb.path().join("nope"))
        .env_remove("KUBERNETES_SERVICE_HOST")
        .output()
        .unwrap();
    assert_exit(&o, 2);
    assert!(stderr(&o).contains("no kubeconfig at"), "{}", text(&o));
    assert_eq!(stderr(&o).lines().count(), 1, "{}", text(&o));

    // A step that asks for more memory than any node has (the node here has 32 MiB).
    let k = K8s::start(&sb, &["--node-memory", "32Mi"]);
    let o = run_k8s(&sb, &k, &["run", "--with", "kubernetes:work"]);
    assert_ne!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        stderr(&o).contains("step `work` asks for 128MiB of memory; the largest node has 32MiB"),
        "{}",
        text(&o)
    );
    assert!(k.manifests().is_empty(), "nothing submitted");
    drop(k);

    // No image; and a directory datastore the pods cannot see.
    let k = K8s::start(&sb, &[]);
    let o = k8s_cmd(&sb, &k, &["run", "--with", "kubernetes"])
        .env_remove("FLOWLIB_K8S_IMAGE")
        .output()
        .unwrap();
    assert_ne!(o.status.code(), Some(0));
    assert!(
        stderr(&o).contains("has no container image"),
        "{}",
        text(&o)
    );
    let o = k8s_cmd(&sb, &k, &["run", "--with", "kubernetes"])
        .env_remove("FLOWLIB_K8S_VOLUME")
        .output()
        .unwrap();
    assert_ne!(o.status.code(), Some(0));
    assert!(
        stderr(&o).contains("is a directory the pods cannot see"),
        "{}",
        text(&o)
    );
    assert!(!stderr(&o).contains("panicked"));
    assert!(k.manifests().is_empty(), "nothing submitted");
    assert_eq!(k.get("/_test/stats")["jobs"], 0);
}

#[test]
fn kubernetes_image_that_cannot_be_pulled_is_explained() {
    let sb = Sandbox::new();
    let k = K8s::start(&sb, &[]);
    let o = k8s_cmd(&sb, &k, &["run", "--with", "kubernetes:work", "--n", "1"])
        .env("FLOWLIB_K8S_IMAGE", "missing/flow:1")
        .env("FLOWLIB_K8S_PULL_GRACE", "1")
        .output()
        .unwrap();
    assert_exit(&o, 1);
    assert!(
        stderr(&o).contains("the container image could not be pulled (ImagePullBackOff")
            || stderr(&o).contains("the container image could not be pulled (ErrImagePull"),
        "{}",
        text(&o)
    );
    // An image pull failure is the platform's: retried on that budget (3), then failed.
    let lost = attempts(&sb, "work/0")
        .into_iter()
        .filter(|a| a.status == flowlib::AttemptStatus::Lost)
        .count();
    assert_eq!(lost, 4, "the first attempt and three platform retries");
}

#[test]
fn kubernetes_cancel_deletes_the_runs_jobs() {
    let sb = Sandbox::new();
    let k = K8s::start(&sb, &[]);
    let child = spawn_k8s(
        &sb,
        &k,
        &[
            "run",
            "--with",
            "kubernetes:work",
            "--mode",
            "sleep",
            "--sleep-ms",
            "2500",
            "--n",
            "2",
        ],
    );
    wait_for_task(&sb, "work/1@0");
    let c = run_k8s(&sb, &k, &["cancel", "latest"]);
    assert_exit(&c, 0);
    assert!(
        stdout(&c).contains("deleted 1 Kubernetes Job(s)"),
        "{}",
        text(&c)
    );
    let o = child.wait_with_output().unwrap();
    assert_ne!(o.status.code(), Some(0));
    assert_eq!(
        latest(&sb).status(),
        flowlib::RunStatus::Cancelled,
        "{}",
        text(&o)
    );
    assert_eq!(k.get("/_test/stats")["jobs"], 0, "the Job is gone");
}

/// A datastore on S3 (moto): the pods get the flow binary through a presigned URL of the
/// datastore's copy, the datastore's credentials from a Secret (`FLOWLIB_K8S_SECRETS`).
#[cfg(feature = "aws")]
#[test]
fn kubernetes_pods_fetch_the_binary_by_digest_from_s3_through_a_presigned_url() {
    let Ok(base) = std::env::var("FLOWLIB_TEST_S3") else {
        assert!(
            std::env::var_os("FLOWLIB_CI").is_none(),
            "FLOWLIB_CI is set but FLOWLIB_TEST_S3 is not (scripts/services.sh)"
        );
        eprintln!(
            "\n*** SKIPPED: FLOWLIB_TEST_S3 not set (eval \"$(scripts/services.sh env)\") ***\n"
        );
        return;
    };
    let sb = Sandbox::new();
    let k = K8s::start(&sb, &[]);
    // The datastore's credentials, as a Secret in the cluster.
    let mut data = serde_json::Map::new();
    for var in [
        "AWS_ENDPOINT",
        "AWS_ALLOW_HTTP",
        "AWS_REGION",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_COPY_IF_NOT_EXISTS",
    ] {
        if let Ok(v) = std::env::var(var) {
            data.insert(var.into(), v.into());
        }
    }
    let secret = serde_json::json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "datastore"}, "stringData": data});
    k.request(
        "POST",
        "/api/v1/namespaces/default/secrets",
        Some(&secret.to_string()),
    );
    let url = format!(
        "{}/k8s-{}-{}",
        base.trim_end_matches('/'),
        std::process::id(),
        sb.path().file_name().unwrap().to_string_lossy()
    );
    // Every step on the cluster: `start`'s pod downloads the binary first, and the `work`
    // pods (which share this host's TMPDIR) find the verified copy it placed; their 3 s
    // timeouts count from when the pod runs, download included.
    let o = k8s_cmd(
        &sb,
        &k,
        &[
            "--datastore",
            &url,
            "run",
            "--with",
            "kubernetes",
            "--n",
            "2",
        ],
    )
    .env_remove("FLOWLIB_K8S_VOLUME")
    .env_remove("FLOWLIB_K8S_EXE")
    .env("FLOWLIB_K8S_SECRETS", "datastore")
    .output()
    .unwrap();
    assert_exit(&o, 0);
    let job = &k.jobs_of("work")[0];
    let c = &job["spec"]["template"]["spec"]["containers"][0];
    let env = c["env"].as_array().unwrap();
    let presigned = env
        .iter()
        .find(|e| e["name"] == "FLOWLIB_EXE_URL")
        .unwrap_or_else(|| panic!("{env:?}"));
    assert!(
        presigned["value"]
            .as_str()
            .unwrap()
            .contains("X-Amz-Signature"),
        "{presigned}"
    );
    assert!(
        !env.iter().any(|e| e["name"] == "AWS_SECRET_ACCESS_KEY"),
        "credentials come from the Secret, not the Job spec"
    );
    assert_eq!(c["envFrom"][0]["secretRef"]["name"], "datastore");
    // The pods ran a downloaded copy, verified by digest, not the driver's file.
    let digest = env
        .iter()
        .find(|e| e["name"] == "FLOWLIB_EXE_DIGEST")
        .unwrap()["value"]
        .as_str()
        .unwrap()
        .to_string();
    let copy = sb
        .path()
        .join("pod-tmp")
        .join(format!("flowlib-exe-{digest}"));
    assert!(copy.exists(), "{}", copy.display());
    assert_eq!(
        std::fs::read(&copy).unwrap(),
        std::fs::read(fixture("remoteflow")).unwrap()
    );
}

#[test]
fn kubernetes_show_says_how_each_step_is_asked_for() {
    let sb = Sandbox::new();
    let o = remote_cmd(&sb, &["show", "--with", "kubernetes:work"])
        .env("FLOWLIB_K8S_IMAGE", "ghcr.io/acme/flow:1")
        .output()
        .unwrap();
    assert_exit(&o, 0);
    let out = stdout(&o);
    assert!(
        out.contains(
            "work   kubernetes (image ghcr.io/acme/flow:1; cpu 1, memory 128MiB; a foreach: one Indexed Job)"
        ),
        "{out}"
    );
    assert!(out.contains("start  threads"), "{out}");
}

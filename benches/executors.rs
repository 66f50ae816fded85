//! Benchmark: per-task overhead of each executor on a foreach of N trivial tasks.
//!
//! ```text
//! cargo bench -p flowlib-benches --bench executors -- threads 1000
//! cargo bench -p flowlib-benches --bench executors -- processes 1000
//! cargo bench -p flowlib-benches --bench executors -- slurm 200          # one job array
//! cargo bench -p flowlib-benches --bench executors -- slurm-singles 200  # one job per task
//! cargo bench -p flowlib-benches --features kubernetes --bench executors -- kubernetes 1000          # one Indexed Job
//! cargo bench -p flowlib-benches --features kubernetes --bench executors -- kubernetes-singles 1000  # one Job per task
//! ```
//! The Kubernetes cases run against the test API server `tests/support/k8s_api.py` (pods
//! are local processes; see the README), started here with a node that fits every pod; they
//! also print how long submission took, how many API requests the run made, and how many
//! of them were status polls per second.
//! The Slurm cases need a usable Slurm (`scripts/slurm.sh start`). Prints the wall time of
//! the run, the time per task and the driver's peak RSS. The datastore goes in `$BENCH_DIR`
//! (default: the system temp directory). The benchmark binary is its own flow binary: the
//! processes and Slurm executors run it again as `step --spec` / `task-exec`.

use std::time::Instant;

use flowlib::prelude::*;

#[derive(FlowState, Default, Serialize, Deserialize)]
struct Fanout {
    #[param(default = 1000u32, help = "number of foreach tasks")]
    n: u32,
    items: Vec<u32>,
    doubled: u64,
    total: u64,
}

#[flow]
impl Fanout {
    #[step(start, next = work, foreach = items)]
    fn start(&mut self) -> Result<()> {
        self.items = (0..self.n).collect();
        Ok(())
    }

    #[step(next = gather)]
    fn work(&mut self, item: &u32) -> Result<()> {
        self.doubled = u64::from(*item) * 2;
        Ok(())
    }

    #[step(join, next = end)]
    fn gather(&mut self, inputs: Inputs<Self>) -> Result<()> {
        self.total = inputs.iter().map(|i| i.doubled).sum();
        Ok(())
    }

    #[step(end)]
    fn end(&mut self) -> Result<()> {
        Ok(())
    }
}

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().collect();
    // Re-invoked by an executor as a task process.
    if args
        .get(1)
        .is_some_and(|a| a == "step" || a == "task-exec" || a.starts_with("--datastore"))
    {
        return flowlib::main::<Fanout>();
    }
    let kind = args
        .iter()
        .skip(1)
        .find(|a| !a.starts_with('-') && a.parse::<u32>().is_err())
        .cloned()
        .unwrap_or_else(|| "processes".into());
    let n: u32 = args
        .iter()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(1000);
    let dir = match std::env::var("BENCH_DIR") {
        Ok(d) => tempfile::tempdir_in(d),
        Err(_) => tempfile::tempdir(),
    }
    .expect("temp dir");
    let ds = flowlib::Datastore::open(
        dir.path().join("ds").to_str().unwrap(),
        flowlib::OpenMode::Create,
    )
    .unwrap();
    let executor = match kind.as_str() {
        "slurm-singles" => {
            std::env::set_var("FLOWLIB_SLURM_ARRAYS", "off");
            "slurm"
        }
        "kubernetes-singles" => {
            std::env::set_var("FLOWLIB_K8S_INDEXED", "off");
            "kubernetes"
        }
        k => k,
    };
    let cluster = (executor == "kubernetes").then(TestCluster::start);
    // Only the foreach goes to the executor under test: start, gather and end stay on
    // threads, so the numbers are the foreach's.
    let with = flowlib::With::parse(&[format!("{executor}:work")]).expect("an executor");
    let opts = flowlib::RunOptions::default()
        .with_param("n", n.to_string())
        .with_executors(with);
    let t0 = Instant::now();
    let summary = flowlib::run::<Fanout>(&ds, &opts).expect("run starts");
    let wall = t0.elapsed();
    assert_eq!(summary.status, flowlib::RunStatus::Succeeded, "{summary:?}");
    let total: u64 = ds
        .artifact("Fanout", &summary.run_id, "gather", "total")
        .unwrap();
    assert_eq!(total, (0..u64::from(n)).map(|i| i * 2).sum::<u64>());
    println!(
        "{kind}: foreach of {n} in {:.3} s = {:.2} ms per task (wall, {} CPUs); driver peak RSS {:.1} MiB",
        wall.as_secs_f64(),
        wall.as_secs_f64() * 1e3 / f64::from(n),
        flowlib::cpu_count(),
        flowlib_testkit::peak_rss_bytes() as f64 / (1 << 20) as f64
    );
    if let Some(c) = cluster {
        let stats: serde_json::Value = serde_json::from_str(&c.stats()).expect("stats");
        let posts = stats["job_posts"].as_array().cloned().unwrap_or_default();
        let at = |i: usize| posts[i][0].as_f64().unwrap_or(0.0);
        let submit_s = if posts.is_empty() {
            0.0
        } else {
            at(posts.len() - 1) - at(0)
        };
        let count = |k: &str| stats["by_kind"][k].as_u64().unwrap_or(0);
        let polls = count("GET apis/batch/v1/default/jobs") + count("GET api/v1/default/pods");
        println!(
            "{kind}: {} Job(s) created over {:.3} s; {} API requests in all, {polls} of them status lists ({:.1} per second of the run)",
            posts.len(),
            submit_s,
            stats["requests"],
            polls as f64 / wall.as_secs_f64()
        );
    }
    std::process::ExitCode::SUCCESS
}
/// The test Kubernetes API server for the `kubernetes` cases, with a node large enough to
/// run every pod at once, and the environment that points the executor at it.
struct TestCluster {
    server: flowlib_testkit::k8s::K8sApiServer,
    _state: tempfile::TempDir,
}

impl TestCluster {
    fn start() -> TestCluster {
        let state = tempfile::tempdir().expect("temp dir");
        let server = flowlib_testkit::k8s::K8sApiServer::start(
            &state.path().join("k8s"),
            &["--node-cpu", "64", "--node-memory", "2000Gi"],
        );
        std::env::set_var("KUBECONFIG", server.kubeconfig());
        std::env::set_var("FLOWLIB_K8S_IMAGE", "busybox:1.36");
        std::env::set_var("FLOWLIB_K8S_VOLUME", "bench");
        std::env::set_var("FLOWLIB_K8S_EXE", std::env::current_exe().unwrap());
        TestCluster {
            server,
            _state: state,
        }
    }

    /// The server's request counters.
    fn stats(&self) -> String {
        self.server.request("GET", "/_test/stats", None)
    }
}

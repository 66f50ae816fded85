//! Benchmark: what the AWS Batch engine costs the driver on a foreach of N trivial tasks:
//! one array job against one job per task, and the DescribeJobs rate while they run.
//!
//! ```text
//! scripts/services.sh install      # the moto venv
//! cargo bench -p flowlib-benches --features batch --bench batch -- array 1000
//! cargo bench -p flowlib-benches --features batch --bench batch -- singles 1000
//! ```
//! Against moto's Batch API with `tests/support/batch_harness.py` as the compute
//! environment (the jobs run as local processes, 8 at once; see that file for what is
//! emulated). The datastore is a local directory the "containers" share
//! (`FLOWLIB_SHARED_VOLUME=1`, in `$BENCH_DIR`, default the temp directory) and the image
//! holds the flow binary (`FLOWLIB_BATCH_EXE`), so the numbers are the engine's, not S3's.
//! Prints the SubmitJob and DescribeJobs requests (counted by the harness), the time from
//! the first SubmitJob of `work` to its last, the polling rate, the run's wall time and the
//! driver's peak RSS. moto answers a request in about a millisecond; AWS takes tens of
//! milliseconds, so on AWS the gap between one array and N jobs is far wider.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use flowlib::prelude::*;

#[derive(FlowState, Default, Serialize, Deserialize)]
struct BatchFanout {
    #[param(default = 1000u32, help = "number of foreach tasks")]
    n: u32,
    items: Vec<u32>,
    doubled: u64,
    total: u64,
}

#[flow]
impl BatchFanout {
    #[step(start, next = work, foreach = items)]
    fn start(&mut self) -> Result<()> {
        self.items = (0..self.n).collect();
        Ok(())
    }

    #[step(next = gather)]
    #[batch(queue = "flowlib-q", job_definition = "flowlib-jd")]
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

/// The harness process; killed (SIGTERM: it kills its jobs) when dropped.
struct Harness(std::process::Child);

impl Drop for Harness {
    fn drop(&mut self) {
        // SAFETY: kill(2) on our own child.
        unsafe {
            libc::kill(self.0.id() as i32, libc::SIGTERM);
        }
        let _ = self.0.wait();
    }
}

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().collect();
    // Re-invoked in a "container" as the task entry.
    if args
        .get(1)
        .is_some_and(|a| a == "step" || a == "task-exec" || a.starts_with("--datastore"))
    {
        return flowlib::main::<BatchFanout>();
    }
    let kind = args
        .iter()
        .skip(1)
        .find(|a| *a == "array" || *a == "singles")
        .cloned()
        .unwrap_or_else(|| "array".into());
    let n: u32 = args
        .iter()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(1000);
    let services = std::env::var_os("FLOWLIB_SERVICES_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/tmp/flowlib-services"));
    let py = services.join("moto-venv/bin/python");
    if !py.exists() {
        eprintln!(
            "{} missing: run `scripts/services.sh install` first",
            py.display()
        );
        return std::process::ExitCode::FAILURE;
    }
    let dir = match std::env::var("BENCH_DIR") {
        Ok(d) => tempfile::tempdir_in(d),
        Err(_) => tempfile::tempdir(),
    }
    .expect("temp dir");
    let hdir = dir.path().join("harness");
    std::fs::create_dir_all(&hdir).unwrap();
    let script =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/support/batch_harness.py");
    let _harness = Harness(
        Command::new(&py)
            .arg(&script)
            .arg(&hdir)
            .arg(r#"{"slots": 8}"#)
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(hdir.join("harness.log")).unwrap())
            .spawn()
            .expect("start the harness"),
    );
    let t0 = Instant::now();
    let port = loop {
        if let Ok(p) = std::fs::read_to_string(hdir.join("port")) {
            break p.trim().to_string();
        }
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "moto never listened"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let exe = std::env::current_exe().unwrap();
    for (k, v) in [
        ("AWS_ACCESS_KEY_ID", "testing".to_string()),
        ("AWS_SECRET_ACCESS_KEY", "testing".to_string()),
        ("AWS_REGION", "us-east-1".to_string()),
        ("AWS_ENDPOINT_URL_BATCH", format!("http://127.0.0.1:{port}")),
        ("FLOWLIB_SHARED_VOLUME", "1".to_string()),
        ("FLOWLIB_BATCH_EXE", exe.display().to_string()),
        (
            "FLOWLIB_BATCH_ARRAYS",
            if kind == "singles" { "off" } else { "on" }.to_string(),
        ),
    ] {
        std::env::set_var(k, v);
    }
    let ds = flowlib::Datastore::open(
        dir.path().join("ds").to_str().unwrap(),
        flowlib::OpenMode::Create,
    )
    .unwrap();
    let with = flowlib::With::parse(&["batch:work".to_string()]).expect("batch is compiled in");
    let opts = flowlib::RunOptions::default()
        .with_param("n", n.to_string())
        .with_executors(with);
    let t0 = Instant::now();
    let summary = flowlib::run::<BatchFanout>(&ds, &opts).expect("run starts");
    let wall = t0.elapsed();
    assert_eq!(summary.status, flowlib::RunStatus::Succeeded, "{summary:?}");
    let total: u64 = ds
        .artifact("BatchFanout", &summary.run_id, "gather", "total")
        .unwrap();
    assert_eq!(total, (0..u64::from(n)).map(|i| i * 2).sum::<u64>());
    let calls: Vec<serde_json::Value> = std::fs::read_to_string(hdir.join("calls.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let at = |c: &serde_json::Value| c["at"].as_f64().unwrap();
    let submits: Vec<&serde_json::Value> = calls
        .iter()
        .filter(|c| c["action"] == "SubmitJob")
        .collect();
    let describes: Vec<&serde_json::Value> = calls
        .iter()
        .filter(|c| c["action"] == "DescribeJobs")
        .collect();
    let span = submits
        .last()
        .zip(submits.first())
        .map_or(0.0, |(l, f)| at(l) - at(f));
    let server_ms: f64 = submits
        .iter()
        .map(|s| s["body"]["_server_ms"].as_f64().unwrap_or(0.0))
        .sum();
    let ids: u64 = describes
        .iter()
        .map(|d| d["body"]["jobs"].as_u64().unwrap())
        .sum();
    let polling = describes
        .last()
        .zip(describes.first())
        .map_or(0.0, |(l, f)| at(l) - at(f));
    println!(
        "batch {kind}: foreach of {n}: {} SubmitJob, {:.3} s from the first to the last, {:.0} ms in moto; {} DescribeJobs ({:.1} ids each, {:.2}/s over {:.1} s); run {:.1} s wall; driver peak RSS {:.1} MiB",
        submits.len(),
        span,
        server_ms,
        describes.len(),
        ids as f64 / describes.len().max(1) as f64,
        describes.len() as f64 / polling.max(1e-9),
        polling,
        wall.as_secs_f64(),
        flowlib_testkit::peak_rss_bytes() as f64 / (1 << 20) as f64
    );
    std::process::ExitCode::SUCCESS
}

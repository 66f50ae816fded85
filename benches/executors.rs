//! Benchmark: per-task overhead of each executor on a foreach of N trivial tasks.
//!
//! ```text
//! cargo bench -p flowlib-benches --bench executors -- threads 1000
//! cargo bench -p flowlib-benches --bench executors -- processes 1000
//! cargo bench -p flowlib-benches --bench executors -- slurm 200          # one job array
//! cargo bench -p flowlib-benches --bench executors -- slurm-singles 200  # one job per task
//! ```
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
        k => k,
    };
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
    std::process::ExitCode::SUCCESS
}

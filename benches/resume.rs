//! Benchmark: resume a 1,000-task foreach whose join failed.
//!
//! ```text
//! cargo bench --bench resume -- [N]        (default N = 1000)
//! ```
//! Measures the reuse part: a resume whose join still fails right away, so the time is
//! planning (listing the origin's commits, reading and pinning their manifests, writing
//! the reuse record and run record) plus replaying the reused tasks through the scheduler.
//! Then a resume with the join fixed, end to end.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use flowlib::prelude::*;

static JOIN_FAILS: AtomicBool = AtomicBool::new(true);

#[derive(FlowState, Default, Serialize, Deserialize)]
struct Wide {
    #[param(default = 1000u32, help = "foreach width")]
    n: u32,
    items: Vec<u32>,
    value: u64,
    total: u64,
}

#[flow]
impl Wide {
    #[step(start, next = work, foreach = items)]
    fn start(&mut self) -> Result<()> {
        self.items = (0..self.n).collect();
        Ok(())
    }

    #[step(next = join)]
    fn work(&mut self, item: &u32) -> Result<()> {
        self.value = u64::from(*item) * 3;
        Ok(())
    }

    #[step(join, next = end)]
    fn join(&mut self, inputs: Inputs<Self>) -> Result<()> {
        if JOIN_FAILS.load(Ordering::SeqCst) {
            return Err("the join is broken".into());
        }
        self.total = inputs.iter().map(|i| i.value).sum();
        Ok(())
    }

    #[step(end)]
    fn end(&mut self) -> Result<()> {
        Ok(())
    }
}

fn main() {
    let n: u32 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(1000);
    let dir = tempfile::tempdir().unwrap();
    let url = dir.path().join("ds");
    let ds = flowlib::Datastore::open(url.to_str().unwrap(), flowlib::OpenMode::Create).unwrap();
    let opts = flowlib::RunOptions::default().with_param("n", n.to_string());
    let t0 = Instant::now();
    let first = flowlib::run::<Wide>(&ds, &opts).unwrap();
    let first_wall = t0.elapsed();
    assert_eq!(first.status, flowlib::RunStatus::Failed);
    assert_eq!(first.tasks_ok as u32, n + 1);

    // A fresh handle, as a new process would have: no in-memory knowledge of the origin.
    let fresh =
        flowlib::Datastore::open(url.to_str().unwrap(), flowlib::OpenMode::Existing).unwrap();
    let t1 = Instant::now();
    let again = flowlib::resume::<Wide>(&fresh, &opts, &flowlib::ResumeOptions::default()).unwrap();
    let reuse = t1.elapsed();
    assert_eq!(again.tasks_reused as u32, n + 1);
    assert_eq!(again.status, flowlib::RunStatus::Failed);

    JOIN_FAILS.store(false, Ordering::SeqCst);
    let fresh =
        flowlib::Datastore::open(url.to_str().unwrap(), flowlib::OpenMode::Existing).unwrap();
    let t2 = Instant::now();
    let fixed = flowlib::resume::<Wide>(&fresh, &opts, &flowlib::ResumeOptions::default()).unwrap();
    let fixed_wall = t2.elapsed();
    assert_eq!(fixed.status, flowlib::RunStatus::Succeeded);
    let total: u64 = fresh
        .artifact("Wide", &fixed.run_id, "end", "total")
        .unwrap();
    assert_eq!(total, (0..u64::from(n)).map(|i| i * 3).sum::<u64>());
    println!(
        "foreach of {n}: first run (join fails) {:.3} s",
        first_wall.as_secs_f64()
    );
    println!(
        "resume, reuse part ({} tasks reused, join fails again at once): {:.1} ms",
        again.tasks_reused,
        reuse.as_secs_f64() * 1000.0
    );
    println!(
        "resume with the join fixed ({} reused, join over {n} inputs + end run): {:.1} ms",
        fixed.tasks_reused,
        fixed_wall.as_secs_f64() * 1000.0
    );
}

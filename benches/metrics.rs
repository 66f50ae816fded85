//! Benchmark: a step that logs 100,000 metric points (one per iteration) against the same
//! step logging none.
//!
//! ```text
//! cargo bench --bench metrics -- [POINTS]        (default 100000)
//! ```
//! The step does a fixed amount of work per iteration (about 1 µs of floating point), so
//! the difference between the two step times is what logging costs the step. Each variant
//! runs five times; the medians of the step time the attempt's manifest records
//! (`timings.step_ms`: the step body, the final flush of the pending points included) are
//! printed, with the whole-run wall times and the bytes stored.

use std::time::Instant;

use flowlib::prelude::*;

#[derive(FlowState, Default, Serialize, Deserialize)]
struct Logged {
    #[param(default = 100000u64, help = "iterations of the step")]
    points: u64,
    #[param(default = true, help = "log one point per iteration")]
    log: bool,
    acc: f64,
}

#[flow]
impl Logged {
    #[step(start, next = end)]
    fn start(&mut self, ctx: &mut Ctx) -> Result<()> {
        let mut x = 0.5f64;
        for i in 0..self.points {
            // About a microsecond of work per iteration.
            for _ in 0..200 {
                x = (x * 3.7 * (1.0 - x)).abs().min(1.0);
            }
            if self.log {
                ctx.log_metric_at("loss", x, i);
            }
        }
        self.acc = x;
        Ok(())
    }

    #[step(end)]
    fn end(&mut self) -> Result<()> {
        Ok(())
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let points: u64 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(100_000);
    let dir = tempfile::tempdir().unwrap();
    let url = dir.path().join("ds");
    let ds = flowlib::Datastore::open(url.to_str().unwrap(), flowlib::OpenMode::Create).unwrap();
    for log in [false, true] {
        let (mut step, mut wall) = (Vec::new(), Vec::new());
        let mut stored = 0usize;
        for _ in 0..5 {
            let opts = flowlib::RunOptions::default()
                .with_param("points", points.to_string())
                .with_param("log", log.to_string());
            let t0 = Instant::now();
            let s = flowlib::run::<Logged>(&ds, &opts).unwrap();
            wall.push(t0.elapsed().as_secs_f64() * 1000.0);
            assert_eq!(s.status, flowlib::RunStatus::Succeeded);
            let a = ds.successful_task("Logged", &s.run_id, "start").unwrap();
            step.push(a.manifest.as_ref().unwrap().timings.step_ms);
            let p = flowlib::read_metrics(&ds, "Logged", &a.source).unwrap();
            assert_eq!(p.len() as u64, if log { points } else { 0 });
            if log {
                assert_eq!(a.metrics["loss"].count, points);
                stored = walk(
                    &url.join("flows/Logged/runs")
                        .join(&s.run_id)
                        .join("metrics"),
                );
            }
        }
        println!(
            "{}: step {:.1} ms (median of 5; {:?}), run {:.1} ms{}",
            if log {
                format!("{points} points logged")
            } else {
                "no points".to_string()
            },
            median(step.clone()),
            step.iter().map(|s| format!("{s:.1}")).collect::<Vec<_>>(),
            median(wall),
            if log {
                format!(", {:.1} MB stored", stored as f64 / 1e6)
            } else {
                String::new()
            }
        );
    }
}

/// Bytes of the files under `dir`.
fn walk(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| {
                    let p = e.path();
                    if p.is_dir() {
                        walk(&p)
                    } else {
                        e.metadata().map(|m| m.len() as usize).unwrap_or(0)
                    }
                })
                .sum()
        })
        .unwrap_or(0)
}
